//! The phone adapter: what the simulator asks of a phone, implemented over the real
//! `ephemera_client::Phone<MemoryStore>` sans-IO core.
//!
//! The simulator moves the bytes (advertisements to the receivers that hear them, requests
//! to the in-process [`Server`]) and never looks inside the phone except through its
//! public API and its events.

use std::sync::Arc;

use ephemera_client::store::{EncounterRecord, MemoryStore, Store as _};
use ephemera_client::{
    ClientConfig, Phone, PhoneEvent, Purpose, ReportPreview, RiskConfig, Sighting, Signal,
};
use ephemera_proto::auth::UploadCode;
use ephemera_proto::{DayNumber, ReportContents, UnixTime};

use super::scenario::Scenario;
use super::server::Server;

/// What one phone broadcasts in an interval.
#[derive(Clone, Debug, Default)]
pub struct Payloads {
    /// The whole payload (GAEN: RPI ‖ AEM; `pet`: the 32-byte key).
    pub full: Vec<u8>,
    /// `pet` only: the four legacy slices, by slice index.
    pub slices: [Vec<u8>; 4],
}

/// A finished report.
#[derive(Clone, Debug)]
pub struct Reported {
    /// What the phone said it would report.
    pub preview: ReportPreview,
    /// What the node accepted.
    pub contents: ReportContents,
}

/// What the simulator needs from a phone.
pub(crate) trait PhoneAdapter: Send {
    /// What to broadcast at `now` (the start of an interval).
    fn advertise(&mut self, now: UnixTime) -> Result<Payloads, String>;
    /// A payload heard at `now` with `rssi`.
    fn hear(&mut self, now: UnixTime, payload: &[u8], rssi: i8) -> Result<(), String>;
    /// Runs the phone's timers at `now`; syncs against `server` when they say so.
    fn timers(&mut self, now: UnixTime, server: &Server) -> Result<(), String>;
    /// Syncs now, whatever the schedule says (after the run).
    fn sync_now(&mut self, now: UnixTime, server: &Server) -> Result<(), String>;
    /// Reports a positive test with `code` through the authority and node.
    fn report(
        &mut self,
        now: UnixTime,
        code: &UploadCode,
        onset: Option<DayNumber>,
        test_day: DayNumber,
        server: &mut Server,
    ) -> Result<Option<Reported>, String>;
}

/// The client's risk configuration for a scenario.
pub fn risk_config(scenario: &Scenario) -> RiskConfig {
    let d = &scenario.detection;
    RiskConfig {
        attenuation_thresholds_db: d.attenuation_thresholds_db,
        attenuation_weights: d.attenuation_weights,
        minimum_window_score: d.minimum_window_score,
        minimum_daily_score: d.minimum_daily_score,
        ..RiskConfig::default()
    }
}

/// The client configuration every phone of a scenario shares.
pub fn client_config(scenario: &Scenario, server: &Server) -> ClientConfig {
    let mut config = ClientConfig::new(scenario.scheme.kind())
        .with_trusted_node(server.node_key())
        .with_decoy_rate(scenario.node.decoys_per_day)
        .with_risk(risk_config(scenario));
    config.sync.interval_seconds = u64::from(scenario.node.sync_hours) * 3600;
    config.tx_power = scenario.radio.tx_power_dbm;
    config.encounter.assumed_tx_power = scenario.radio.tx_power_dbm;
    let detection = &scenario.detection;
    config.report.upload_margin_db =
        (!detection.upload_all_encounters).then_some(detection.upload_margin_db);
    // Contact time is credited per scan, up to the declared scan period: each phone draws
    // its own period between the scenario's bounds, so declare the longest.
    config.encounter.scan_period_seconds = scenario.scanning.period_max_s;
    config.encounter.max_gap_seconds = config
        .encounter
        .max_gap_seconds
        .max(scenario.scanning.period_max_s);
    config
}

/// One app user's phone: the real client core over a memory store.
#[derive(Debug)]
pub struct ClientPhone {
    phone: Phone<MemoryStore>,
    pet: bool,
    /// Per exposure day, when the phone first scored it high risk.
    pub notified: Vec<(DayNumber, UnixTime)>,
    /// Bytes of batch index pages and batches received.
    pub bytes_down: u64,
    /// Batches the phone rejected.
    pub rejected: u32,
    /// Token filters the phone took in (publication version 3).
    pub filters_fetched: u64,
    /// Held tokens looked up in them: the chances of a false match, 2⁻³² each.
    pub filter_lookups: u64,
}

impl ClientPhone {
    /// A phone with `config` and a seed of its own.
    ///
    /// # Errors
    /// The client's error, as text, for a config it refuses.
    pub fn new(config: Arc<ClientConfig>, seed: [u8; 32]) -> Result<ClientPhone, String> {
        let pet = config.scheme == ephemera_proto::SchemeKind::Pet;
        let phone = Phone::new(config, MemoryStore::new(), seed).map_err(|e| e.to_string())?;
        Ok(ClientPhone {
            phone,
            pet,
            notified: Vec::new(),
            bytes_down: 0,
            rejected: 0,
            filters_fetched: 0,
            filter_lookups: 0,
        })
    }

    /// Encounters the phone keeps.
    pub fn encounters(&self) -> usize {
        self.phone.store().encounter_count()
    }

    /// The encounter records the phone keeps (read by the miss classification).
    pub fn records(&self) -> Vec<EncounterRecord> {
        let mut records = Vec::new();
        // A memory store never fails to read.
        let _ = self
            .phone
            .store()
            .for_each_encounter(&mut |r| records.push(r.clone()));
        records
    }

    /// The exposure windows the phone stored (every matched key or encounter).
    pub fn windows(&self) -> Vec<ephemera_client::risk::ExposureWindow> {
        let store = self.phone.store();
        // A memory store never fails to read.
        let days = store.window_days().unwrap_or_default();
        days.into_iter()
            .flat_map(|day| store.windows_of(day).unwrap_or_default())
            .collect()
    }

    /// Held encounters a false filter match alone would make a high-risk day of: their own
    /// window reaches the day's minimum score under `risk`.
    pub fn critical_records(&self, risk: &RiskConfig, assumed_tx_power: i8) -> u64 {
        let mut critical = 0;
        let _ = self.phone.store().for_each_encounter(&mut |r| {
            if !matches!(r.evidence, ephemera_client::store::Evidence::Pet { .. }) {
                return;
            }
            let offset = match r.level_kind {
                ephemera_client::signal::LevelKind::Attenuation => 0,
                ephemera_client::signal::LevelKind::NegatedRssi => i32::from(assumed_tx_power),
            };
            let window = ephemera_client::risk::ExposureWindow {
                day: r.day(),
                seconds_per_bucket: r.signal.buckets(offset, risk),
                infectiousness: risk.infectiousness_when_onset_missing,
                report_type: risk.report_type_when_missing,
                heard: Some(ephemera_client::risk::HeardSpan {
                    first: r.first_seen,
                    last: r.last_seen,
                }),
            };
            critical += u64::from(risk.daily(r.day(), r.day(), [&window]).high_risk);
        });
        critical
    }

    /// Serves the phone's requests until quiet (index → batches → next page).
    fn serve(&mut self, now: UnixTime, server: &Server) -> Result<(), String> {
        while let Some(request) = self.phone.poll_request() {
            let response = server.serve(now, &request).map_err(|e| e.to_string())?;
            if matches!(
                request.purpose,
                Purpose::FetchIndex | Purpose::FetchBatch(_) | Purpose::FetchFilter(_)
            ) {
                self.bytes_down += response.body.len() as u64;
            }
            if matches!(request.purpose, Purpose::FetchFilter(_)) && response.status == 200 {
                self.filters_fetched += 1;
                self.filter_lookups += self.encounters() as u64;
            }
            // A batch the phone rejects comes back as an event, not a failure of the run.
            let _ = self.phone.handle_response(now, request.id, response);
            self.drain_events(now);
        }
        self.drain_events(now);
        Ok(())
    }

    fn drain_events(&mut self, now: UnixTime) {
        while let Some(event) = self.phone.poll_event() {
            match event {
                PhoneEvent::ExposureFound(daily)
                    if daily.high_risk && !self.notified.iter().any(|(d, _)| *d == daily.day) =>
                {
                    self.notified.push((daily.day, now));
                }
                PhoneEvent::BatchRejected(_) => self.rejected += 1,
                _ => {}
            }
        }
    }
}

impl PhoneAdapter for ClientPhone {
    fn advertise(&mut self, now: UnixTime) -> Result<Payloads, String> {
        let first = self.phone.advertisement(now).map_err(|e| e.to_string())?;
        let mut payloads = Payloads {
            full: first.full,
            slices: Default::default(),
        };
        if self.pet {
            // Each call advances the carousel: four calls give the four slices.
            let mut legacy = first.legacy;
            for i in 0..4 {
                if let Ok(slice) = ephemera_proto::pet::KeySlice::decode(&legacy) {
                    payloads.slices[usize::from(slice.index()) % 4] = legacy.clone();
                }
                if i < 3 {
                    legacy = self
                        .phone
                        .advertisement(now)
                        .map_err(|e| e.to_string())?
                        .legacy;
                }
            }
        }
        Ok(payloads)
    }

    fn hear(&mut self, now: UnixTime, payload: &[u8], rssi: i8) -> Result<(), String> {
        let sighting = Sighting {
            payload,
            signal: Signal::Rssi {
                rssi,
                tx_power: None,
            },
        };
        self.phone
            .handle_sighting(now, &sighting)
            .map_err(|e| e.to_string())
    }

    fn timers(&mut self, now: UnixTime, server: &Server) -> Result<(), String> {
        self.phone.handle_timeout(now).map_err(|e| e.to_string())?;
        self.serve(now, server)
    }

    fn sync_now(&mut self, now: UnixTime, server: &Server) -> Result<(), String> {
        self.phone.start_sync(now).map_err(|e| e.to_string())?;
        self.serve(now, server)
    }

    fn report(
        &mut self,
        now: UnixTime,
        code: &UploadCode,
        onset: Option<DayNumber>,
        test_day: DayNumber,
        server: &mut Server,
    ) -> Result<Option<Reported>, String> {
        let preview = match self.phone.start_report(now, code, onset, Some(test_day)) {
            Ok(p) => p,
            // A phone with nothing to report (no keys or encounters in the window) uploads
            // nothing; not an error of the run.
            Err(ephemera_client::ClientError::Report(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let mut accepted = None;
        // The upload follows the verify's answer 1 to 3 s later, on the phone's timer.
        for later in 0..=3 {
            let now = now.plus_seconds(later);
            if later > 0 {
                self.phone.handle_timeout(now).map_err(|e| e.to_string())?;
            }
            while let Some(request) = self.phone.poll_request() {
                let (response, contents) = server.serve_mut(now, &request);
                if contents.is_some() {
                    accepted = contents;
                }
                self.phone
                    .handle_response(now, request.id, response)
                    .map_err(|e| e.to_string())?;
            }
            if !self.phone.report_in_progress() {
                break;
            }
        }
        self.drain_events(now);
        Ok(accepted.map(|contents| Reported { preview, contents }))
    }
}
