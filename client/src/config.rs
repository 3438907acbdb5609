//! Client configuration: defaults with their reasons, chained setters and one `validate`.

use ephemera_proto::auth::TrustedAuthorities;
use ephemera_proto::batch::TrustedNodes;
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::sunset::SunsetCommittee;
use ephemera_proto::token::{Audience, UploadDelay};
use ephemera_proto::{ReportLimits, SchemeKind, UnixTime};

use crate::error::ConfigError;
use crate::risk::RiskConfig;

/// How sightings become encounters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncounterConfig {
    /// Seconds between two sightings of the same peer that still count as continuous
    /// contact. Default 300: GAEN phones scan about every 5 minutes, so a peer heard in two
    /// consecutive scans was near the whole time in between.
    pub max_gap_seconds: u32,
    /// `pet`: seconds a peer key must be heard (with one of our keys) before the phone
    /// derives and keeps the encounter's tokens. Default 120: a passer-by costs no key
    /// agreement and no storage, and 2 minutes is well below the shortest window the default
    /// risk score counts (300 weighted seconds).
    pub min_pet_encounter_seconds: u32,
    /// Most peers tracked at once; the stalest is closed first when more are heard.
    /// Default 256.
    pub max_open_encounters: usize,
    /// `pet`: most partial key slice groups held by the reassembler. Default 64.
    pub slice_groups: usize,
    /// `pet`: transmit power assumed when a sighting gives RSSI without a TX power (dBm).
    /// Default −8, a typical phone's calibrated BLE transmit power.
    pub assumed_tx_power: i8,
    /// Sightings less than this many seconds after the first sighting of a scan belong to
    /// the same scan instance. Default 20: a duty-cycled scan (GAEN: about 4 s every 3–5
    /// min) delivers its results in one burst well within it.
    pub scan_window_seconds: u32,
    /// The app's own scan period (seconds between the starts of two scans): set it to
    /// the cadence the app scans at. Each peer heard in a scan instance is credited the
    /// time since the phone's previous scan instance, at most this (as GAEN's scan
    /// instances are), so a contact is credited its duration at any cadence. Default 240,
    /// GAEN's duty cycle (a 4 s scan about every 4 minutes); recommended 60–300.
    pub scan_period_seconds: u32,
    /// Seconds between two checkpoints of the open encounters to the store; a kill loses
    /// at most this much contact time. Default 60, the shortest recommended scan period,
    /// so a kill loses at most one scan period at any recommended cadence.
    pub checkpoint_seconds: u32,
}

impl Default for EncounterConfig {
    fn default() -> Self {
        EncounterConfig {
            max_gap_seconds: 300,
            min_pet_encounter_seconds: 120,
            max_open_encounters: 256,
            slice_groups: 64,
            assumed_tx_power: -8,
            scan_window_seconds: 20,
            scan_period_seconds: 240,
            checkpoint_seconds: 60,
        }
    }
}

/// The federation name a node uses when its config names none (`[federation] region`):
/// the node's `ephemera_node_core::policy::DEFAULT_AUDIENCE`.
pub const DEFAULT_FEDERATION: &str = "ephemera";

/// What a report holds and how it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportConfig {
    /// Days before symptom onset that belong to the infectious window. Default 2: the
    /// ECDC/WHO definition of the infectious period of COVID-19 starts 2 days before onset.
    pub days_before_onset: u32,
    /// Days before the test when no onset is known (asymptomatic). Default 2, by the same
    /// definition.
    pub days_before_test: u32,
    /// Protocol limits the report must respect (counts, retention).
    pub limits: ReportLimits,
    /// Seconds before the first retry of a verify or upload that got no definitive answer
    /// (no network, a 5xx, a 429). Default 30; each further retry waits twice as long.
    pub retry_initial_seconds: u64,
    /// Longest wait between two retries. Default 3600: a phone that was offline for
    /// hours still uploads within the hour it is back, well inside the certificate's
    /// lifetime.
    pub retry_max_seconds: u64,
    /// Authority keys whose certificates this phone uploads and whose venue releases it
    /// matches (feature `venue`). Default: none, and then the phone checks a
    /// certificate's times, HMAC and type, and a release's times and shape, but leaves
    /// their signatures to the node; an app that pins its authorities' keys has the
    /// signatures checked too.
    pub trusted_authorities: TrustedAuthorities,
    /// The federation (its nodes' `[federation] region`) whose blind upload tokens this
    /// phone asks for (`docs/PROTOCOL.md` §4.4): its name fixes the tokens' audience.
    /// Default: none, and then the phone fetches no token keys and reports with a
    /// certificate (§4.3). Set, the phone fetches the authority's token keys with every
    /// sync (`GET /v2/token-keys`, checked against
    /// [`trusted_authorities`](ReportConfig::trusted_authorities), which must then name
    /// the authority) and reports with a blind token whenever the node has keys for
    /// today; a node without token keys keeps the certificate flow.
    pub federation: Option<String>,
    /// How long a report with a blind token waits between the verify's answer and the
    /// upload. Default [`UploadDelay::NextDay`]: a random instant of the next UTC day, so
    /// the upload's time says nothing about which verify of its day it follows (a few
    /// hours are not enough, §4.4). The drawn time is kept with the report: a restart or
    /// a retry never uploads earlier.
    pub upload_delay: UploadDelay,
    /// `pet`: upload only the encounters that could count for the peer: those whose chain
    /// of this phone's windows (all peers together, scored as the peer's risk score does)
    /// reaches the window minimum with attenuations taken this many dB closer than this
    /// phone measured (two phones hear one contact differently). `None` uploads every
    /// encounter of the infectious window. Default `Some(10)` (`docs/PROTOCOL.md` §3.5):
    /// every token uploaded is a token every phone downloads.
    pub upload_margin_db: Option<u8>,
}

impl ReportConfig {
    /// The audience of [`federation`](ReportConfig::federation), if set.
    pub fn audience(&self) -> Option<Audience> {
        self.federation.as_deref().map(Audience::named)
    }
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            days_before_onset: 2,
            days_before_test: 2,
            limits: ReportLimits::default(),
            retry_initial_seconds: 30,
            retry_max_seconds: 3600,
            trusted_authorities: TrustedAuthorities::new(),
            federation: None,
            upload_delay: UploadDelay::NextDay,
            upload_margin_db: Some(10),
        }
    }
}

/// The clock contract: how far times may go back or jump ahead. See the crate docs,
/// "Time".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClockConfig {
    /// A time earlier than the latest seen by at most this many seconds is taken as the
    /// latest (threads racing to the lock); earlier than that is refused with
    /// [`ClientError::ClockWentBack`](crate::ClientError::ClockWentBack). Default 60.
    pub tolerance_seconds: u64,
    /// A forward jump larger than this (seconds since the last confirmed time) is not
    /// trusted for retention until confirmed (by a node's `Date` in
    /// [`Phone::confirm_time`](crate::Phone::confirm_time)), or undone by the clock going
    /// back to the confirmed timeline: nothing is purged on it meanwhile. Default 2 days: a phone off over a weekend
    /// purges on its next sync, a clock set 20 days ahead purges nothing.
    pub max_forward_jump_seconds: u64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        ClockConfig {
            tolerance_seconds: 60,
            max_forward_jump_seconds: 2 * 86_400,
        }
    }
}

/// Decoy verify and upload flows, started on a Poisson schedule; each reproduces what a
/// real report looks like from outside (see `phone::decoy_flow`).
#[derive(Clone, Debug, PartialEq)]
pub struct DecoyConfig {
    /// Mean decoy flows per day; 0 turns decoys off. Default 0.1 (one every ten days on
    /// average): with a few positives per thousand people, decoys still outnumber real
    /// reports by an order of magnitude, at about one upload per phone per ten days.
    pub rate_per_day: f64,
    /// Share of decoy flows that send a second verify and upload, as a person does after
    /// mistyping a code. Default 0.1; an authority sets it to the share of its real
    /// verifies that fail (its `ephemera_verifications_total` by outcome), so retries do
    /// not mark real reports.
    pub retry_fraction: f64,
    /// A decoy's verify follows the sync that precedes it after a delay drawn uniformly
    /// from this range (seconds), as a person types a code after opening the app (which
    /// syncs); a decoy's retry follows its first attempt after a delay from the same range.
    /// Default 20..=180.
    pub delay_seconds: (u64, u64),
}

impl Default for DecoyConfig {
    fn default() -> Self {
        DecoyConfig {
            rate_per_day: 0.1,
            retry_fraction: 0.1,
            delay_seconds: (20, 180),
        }
    }
}

/// Batch synchronisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncConfig {
    /// Seconds between two syncs (±10 % jitter). Default 4 hours: batches are cut hourly,
    /// and a few checks a day keep notifications timely without waking the radio often.
    pub interval_seconds: u64,
    /// Oldest a node's signed head may be, in seconds, before a sync reports it stale
    /// (`stale-head`) instead of accepting the index. Default 6 hours: a node signs its
    /// head for every index request (to the minute), so only a cache or a node replaying
    /// an old view serves an older one.
    pub max_head_age_seconds: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            interval_seconds: 4 * 3600,
            max_head_age_seconds: 6 * 3600,
        }
    }
}

/// Earliest [`SunsetConfig::end_of_life`] accepted: 2020-01-01T00:00:00Z. An earlier value
/// is a mistake (a zero, a duration given as a date) that would end every phone at once.
pub const EARLIEST_END_OF_LIFE: UnixTime = UnixTime(1_577_836_800);
/// Latest [`SunsetConfig::end_of_life`] accepted: 2100-01-01T00:00:00Z. A later value is a
/// mistake too (milliseconds given for seconds), and would mean no end at all.
pub const LATEST_END_OF_LIFE: UnixTime = UnixTime(4_102_444_800);

/// The end of purpose (`docs/MOBILE.md`, "Sunset"): who may end this app by a signed
/// order, and when it ends on its own. Fixed in the app build: an app update is the only
/// way to change it.
///
/// At the end the phone erases every key, sighting, encounter, result and pending report,
/// keeps only a small marker saying it ended, and refuses to broadcast, record sightings,
/// sync or report from then on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SunsetConfig {
    /// The sunset committee whose orders this phone obeys (`k` of `n` sunset keys, not the
    /// authority's day-to-day keys). Default: none, and then every order is ignored (and
    /// counted as rejected): only [`end_of_life`](SunsetConfig::end_of_life) ends the app.
    pub committee: Option<SunsetCommittee>,
    /// The federation (`[federation] region` of its nodes) an order must name. Default:
    /// none, which means [`ReportConfig::federation`] if set, else
    /// [`DEFAULT_FEDERATION`]; set, it must equal [`ReportConfig::federation`] when that is
    /// set too (a phone belongs to one federation).
    pub federation: Option<String>,
    /// The hard end: at this time the phone erases everything and stops even if no order
    /// ever came (a phone that never connects again must still stop). A date fixed in the
    /// app build, between [`EARLIEST_END_OF_LIFE`] and [`LATEST_END_OF_LIFE`]; pick the
    /// legal end of the programme, not a lifetime counted from installation (a phone
    /// installed late would outlive the programme). Default: none.
    pub end_of_life: Option<UnixTime>,
}

/// Venue check-in (`docs/MOBILE.md` §16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VenueConfig {
    /// Seconds after arrival at which a check-in the user did not end is checked out
    /// automatically (people forget). Default 12 hours (43,200): longer than a working
    /// day or an evening out, short enough that a forgotten check-in does not claim the
    /// night. At most [`MAX_STAY_SECONDS`], so a visit spans at most
    /// `ephemera_proto::venue::MAX_VISIT_HOURS` hours.
    pub max_stay_seconds: u32,
}

/// The longest [`VenueConfig::max_stay_seconds`]: 23 hours, so that a visit from any
/// second of an hour overlaps at most `MAX_VISIT_HOURS` (24) venue hours.
pub const MAX_STAY_SECONDS: u32 = 23 * 3600;

impl Default for VenueConfig {
    fn default() -> Self {
        VenueConfig {
            max_stay_seconds: 12 * 3600,
        }
    }
}

/// Everything a phone is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientConfig {
    /// The token scheme this phone broadcasts and matches. Default `pet`.
    pub scheme: SchemeKind,
    /// Days of keys, secrets-derived tokens, encounters and exposures kept. Default 14.
    pub retention_days: u32,
    /// Node keys whose batch signatures this phone accepts. Default: none (nothing
    /// verifies until the app configures its nodes).
    pub trusted_nodes: TrustedNodes,
    /// `gaen`: the transmit power (dBm) announced in the encrypted metadata. Default −8.
    pub tx_power: i8,
    /// Encounter aggregation.
    pub encounter: EncounterConfig,
    /// Risk scoring.
    pub risk: RiskConfig,
    /// Reports.
    pub report: ReportConfig,
    /// Decoys.
    pub decoy: DecoyConfig,
    /// Sync.
    pub sync: SyncConfig,
    /// The clock contract.
    pub clock: ClockConfig,
    /// `gaen`: P-256 public keys (raw 65-byte points or DER SubjectPublicKeyInfo) of GAEN
    /// key servers whose `export.sig` this phone accepts. Default: none.
    pub gaen_export_keys: Vec<Vec<u8>>,
    /// The end of purpose: the sunset committee and the hard end of life.
    pub sunset: SunsetConfig,
    /// Venue check-in.
    pub venue: VenueConfig,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            scheme: SchemeKind::Pet,
            retention_days: 14,
            trusted_nodes: TrustedNodes::new(),
            tx_power: -8,
            encounter: EncounterConfig::default(),
            risk: RiskConfig::default(),
            report: ReportConfig::default(),
            decoy: DecoyConfig::default(),
            sync: SyncConfig::default(),
            clock: ClockConfig::default(),
            gaen_export_keys: Vec::new(),
            sunset: SunsetConfig::default(),
            venue: VenueConfig::default(),
        }
    }
}

impl ClientConfig {
    /// The default configuration for `scheme`.
    pub fn new(scheme: SchemeKind) -> Self {
        ClientConfig {
            scheme,
            ..ClientConfig::default()
        }
    }

    /// Trusts `key` to sign batches.
    pub fn with_trusted_node(mut self, key: Ed25519PublicKey) -> Self {
        self.trusted_nodes.insert(key);
        self
    }

    /// Uploads only certificates signed by `key` (and other keys so added).
    pub fn with_trusted_authority(mut self, key: Ed25519PublicKey) -> Self {
        self.report.trusted_authorities.insert(key);
        self
    }

    /// Reports with blind tokens of the federation `name` (`[federation] region` of its
    /// nodes; [`DEFAULT_FEDERATION`] when they name none), whose key sets must be signed by
    /// a [trusted authority](ClientConfig::with_trusted_authority).
    pub fn with_federation(mut self, name: impl Into<String>) -> Self {
        self.report.federation = Some(name.into());
        self
    }

    /// Sets the delay between a token verify's answer and its upload.
    pub fn with_upload_delay(mut self, delay: UploadDelay) -> Self {
        self.report.upload_delay = delay;
        self
    }

    /// Accepts GAEN export files signed by this P-256 public key (raw point or DER SPKI).
    pub fn with_gaen_export_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.gaen_export_keys.push(key.into());
        self
    }

    /// Sets the retention period in days.
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention_days = days;
        self
    }

    /// Sets the risk configuration.
    pub fn with_risk(mut self, risk: RiskConfig) -> Self {
        self.risk = risk;
        self
    }

    /// Sets the decoy rate (per day; 0 turns decoys off).
    pub fn with_decoy_rate(mut self, rate_per_day: f64) -> Self {
        self.decoy.rate_per_day = rate_per_day;
        self
    }

    /// Obeys sunset orders approved by `committee` (see [`SunsetConfig::committee`]).
    pub fn with_sunset_committee(mut self, committee: SunsetCommittee) -> Self {
        self.sunset.committee = Some(committee);
        self
    }

    /// Ends the phone at `at` whatever happens (see [`SunsetConfig::end_of_life`]).
    pub fn with_end_of_life(mut self, at: UnixTime) -> Self {
        self.sunset.end_of_life = Some(at);
        self
    }

    /// The federation a sunset order must name: [`SunsetConfig::federation`], else
    /// [`ReportConfig::federation`], else [`DEFAULT_FEDERATION`].
    pub fn sunset_federation(&self) -> &str {
        self.sunset
            .federation
            .as_deref()
            .or(self.report.federation.as_deref())
            .unwrap_or(DEFAULT_FEDERATION)
    }

    /// Sets the encounter configuration.
    pub fn with_encounter(mut self, encounter: EncounterConfig) -> Self {
        self.encounter = encounter;
        self
    }

    /// Checks the rules that span fields.
    ///
    /// # Errors
    /// The first broken rule as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        let max = self.report.limits.retention_days.max(1);
        if self.retention_days == 0 || self.retention_days > max {
            return Err(ConfigError::Retention {
                got: self.retention_days,
                max,
            });
        }
        self.risk.validate()?;
        if !(1..=MAX_STAY_SECONDS).contains(&self.venue.max_stay_seconds) {
            return Err(ConfigError::Field {
                field: "venue.max_stay_seconds (1 to 82,800)",
            });
        }
        let e = &self.encounter;
        if e.max_gap_seconds == 0 {
            return Err(ConfigError::Field {
                field: "encounter.max_gap_seconds",
            });
        }
        if e.max_open_encounters == 0 || e.slice_groups == 0 {
            return Err(ConfigError::Field {
                field: "encounter capacities",
            });
        }
        if !(0.0..=1.0).contains(&self.decoy.retry_fraction) {
            return Err(ConfigError::Field {
                field: "decoy.retry_fraction",
            });
        }
        if self.decoy.delay_seconds.0 > self.decoy.delay_seconds.1 {
            return Err(ConfigError::Field {
                field: "decoy.delay_seconds",
            });
        }
        if !(self.decoy.rate_per_day.is_finite() && self.decoy.rate_per_day >= 0.0) {
            return Err(ConfigError::Field {
                field: "decoy.rate_per_day",
            });
        }
        if e.scan_window_seconds == 0 || e.scan_window_seconds >= e.scan_period_seconds {
            return Err(ConfigError::Field {
                field: "encounter.scan_window_seconds",
            });
        }
        if e.scan_period_seconds > e.max_gap_seconds {
            return Err(ConfigError::Field {
                field: "encounter.scan_period_seconds",
            });
        }
        if e.checkpoint_seconds == 0 {
            return Err(ConfigError::Field {
                field: "encounter.checkpoint_seconds",
            });
        }
        let r = &self.report;
        if r.retry_initial_seconds == 0 || r.retry_max_seconds < r.retry_initial_seconds {
            return Err(ConfigError::Field {
                field: "report.retry_*_seconds",
            });
        }
        if self.clock.max_forward_jump_seconds < 3600 {
            return Err(ConfigError::Field {
                field: "clock.max_forward_jump_seconds",
            });
        }
        if self.sync.interval_seconds < 60 {
            return Err(ConfigError::Field {
                field: "sync.interval_seconds",
            });
        }
        // A head is signed to the minute: a bound under two minutes would refuse fresh ones.
        if self.sync.max_head_age_seconds < 120 {
            return Err(ConfigError::Field {
                field: "sync.max_head_age_seconds",
            });
        }
        if let Some(name) = &self.report.federation
            && (name.is_empty() || self.report.trusted_authorities == TrustedAuthorities::new())
        {
            // No authority pinned: no token key set could ever be accepted.
            return Err(ConfigError::Field {
                field: "report.federation",
            });
        }
        self.validate_sunset()?;
        if self.report.days_before_onset > self.retention_days
            || self.report.days_before_test > self.retention_days
        {
            return Err(ConfigError::Field {
                field: "report.days_before_*",
            });
        }
        Ok(())
    }
}

impl ClientConfig {
    fn validate_sunset(&self) -> Result<(), ConfigError> {
        if let Some(at) = self.sunset.end_of_life
            && !(EARLIEST_END_OF_LIFE..LATEST_END_OF_LIFE).contains(&at)
        {
            return Err(ConfigError::Field {
                field: "sunset.end_of_life (unix seconds, 2020 to 2100)",
            });
        }
        if let Some(name) = &self.sunset.federation {
            let other = self.report.federation.as_ref().is_some_and(|f| f != name);
            // As long as a node's `[federation] region` may be (`SunsetOrder::federation`).
            if name.is_empty() || name.len() > 32 || other {
                return Err(ConfigError::Field {
                    field: "sunset.federation (1 to 32 bytes, as report.federation)",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_validates_and_setters_chain() {
        let config = ClientConfig::new(SchemeKind::Gaen)
            .with_retention_days(10)
            .with_decoy_rate(0.0);
        config.validate().unwrap();
        assert_eq!(config.scheme, SchemeKind::Gaen);
        assert!(
            ClientConfig::default()
                .with_retention_days(0)
                .validate()
                .is_err()
        );
        assert!(
            ClientConfig::default()
                .with_retention_days(15)
                .validate()
                .is_err()
        );
        assert!(
            ClientConfig::default()
                .with_decoy_rate(f64::INFINITY)
                .validate()
                .is_err()
        );
        let federated = ClientConfig::default().with_federation(DEFAULT_FEDERATION);
        assert!(federated.validate().is_err(), "no authority to check keys");
        let key = ephemera_proto::auth::AuthoritySigningKey::from_seed(&[1; 32]).public_key();
        federated
            .clone()
            .with_trusted_authority(key)
            .validate()
            .unwrap();
        assert!(
            ClientConfig::default()
                .with_trusted_authority(key)
                .with_federation("")
                .validate()
                .is_err()
        );
        assert_eq!(
            federated.report.audience(),
            Some(Audience::named(DEFAULT_FEDERATION))
        );
    }

    #[test]
    fn the_longest_stay_fits_the_venue_hours_of_a_visit() {
        use ephemera_proto::venue::{MAX_VISIT_HOURS, VenueHour};
        // From the last second of an hour, the longest stay still spans at most 24 hours.
        let arrival = UnixTime(1_700_003_599);
        let departure = arrival.plus_seconds(u64::from(MAX_STAY_SECONDS));
        let first = VenueHour::containing(arrival).unwrap();
        let last = VenueHour::containing(departure).unwrap();
        assert!(u64::from(last.0 - first.0) < MAX_VISIT_HOURS);
        let mut config = ClientConfig::default();
        config.validate().unwrap();
        for bad in [0, MAX_STAY_SECONDS + 1] {
            config.venue.max_stay_seconds = bad;
            assert!(config.validate().is_err(), "{bad}");
        }
        config.venue.max_stay_seconds = MAX_STAY_SECONDS;
        config.validate().unwrap();
    }

    #[test]
    fn sunset_settings_are_checked() {
        use ephemera_proto::signing::Ed25519SigningKey;
        let key = Ed25519SigningKey::from_seed(&[7; 32]).public_key();
        let committee = SunsetCommittee::new(&[key], 1).unwrap();
        let config = ClientConfig::default()
            .with_sunset_committee(committee)
            .with_end_of_life(UnixTime(1_900_000_000));
        config.validate().unwrap();
        assert_eq!(config.sunset_federation(), DEFAULT_FEDERATION);
        for bad in [UnixTime(0), UnixTime(1_000), UnixTime(1_900_000_000_000)] {
            let err = ClientConfig::default().with_end_of_life(bad).validate();
            assert!(
                matches!(err, Err(ConfigError::Field { field }) if field.starts_with("sunset.end_of_life")),
                "{bad:?}"
            );
        }
        let mut named = ClientConfig::default();
        named.sunset.federation = Some("north".into());
        named.validate().unwrap();
        assert_eq!(named.sunset_federation(), "north");
        for bad in ["", &"x".repeat(33)] {
            named.sunset.federation = Some(bad.to_owned());
            assert!(named.validate().is_err(), "{bad:?}");
        }
        let authority = ephemera_proto::auth::AuthoritySigningKey::from_seed(&[1; 32]).public_key();
        let mut split = ClientConfig::default()
            .with_trusted_authority(authority)
            .with_federation("south");
        assert_eq!(split.sunset_federation(), "south");
        split.sunset.federation = Some("north".into());
        assert!(
            split.validate().is_err(),
            "a phone belongs to one federation"
        );
    }
}
