//! [`Phone`]: the sans-IO state machine a mobile app drives.

mod certificate_check;
mod clock;
mod cross_check;
mod decoy_flow;
mod events;
mod filter;
mod ingest;
mod pet_keys;
mod release;
mod report;
mod sealing;
mod sighting;
mod status;
mod sunset;
mod sync;
mod token_keys;
mod venue;
#[cfg(feature = "venue")]
mod venue_releases;

use std::collections::VecDeque;
use std::sync::Arc;

use ephemera_proto::gaen::Metadata;
use ephemera_proto::pet::{SliceAssembler, SliceCarousel};
use ephemera_proto::scheme::{Broadcast, DailyKey};
use ephemera_proto::sealed::{ResponseOpener, SealingPublicKey};
use ephemera_proto::{DayNumber, IntervalNumber, SchemeKind, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

pub use clock::http_date;
pub use cross_check::{HeadCrossCheck, MAX_HEAD_LIST_BYTES};
pub use events::{EventRecord, MAX_KEPT_EVENTS};
pub use ingest::{BatchIngest, ExportSummary, IngestSummary};
pub use report::ReportPreview;
pub use sighting::Sighting;
pub use status::PhoneStatus;
pub use sunset::EndReason;
pub use token_keys::TokenKeysCrossCheck;
pub use venue::{CheckInStatus, VenueMatchSummary, VenueWarning};
#[cfg(feature = "venue")]
pub use venue_releases::{
    MAX_RELEASE_INDEX_BYTES, MAX_RELEASE_INDEX_ENTRIES, MAX_RELEASES_PER_ROUND,
};

use crate::config::ClientConfig;
use crate::decoy::next_decoy;
use crate::error::ClientError;
use crate::request::{Method, Purpose, Request, RequestId, Response};
use crate::store::{MetaKey, OwnKey, Store};

use self::clock::{ClockState, Strictness};
use self::decoy_flow::DecoyFlow;
use self::events::EventQueue;
use self::report::ReportFlow;
use self::sighting::{OpenEncounter, ScanClock};
use self::sync::SyncState;

/// What to broadcast now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertisement {
    /// The interval this payload belongs to; rotate (payload and, on the OS side, the
    /// Bluetooth address) when it ends.
    pub interval: IntervalNumber,
    /// The payload for a legacy advertisement: the 20-byte GAEN payload (RPI ‖ AEM), or the
    /// next 16-byte `pet` key slice of the carousel (each call advances it).
    pub legacy: Vec<u8>,
    /// The payload for extended advertising or a GATT read: the GAEN payload, or the whole
    /// 32-byte `pet` key.
    pub full: Vec<u8>,
    /// The first instant of the next interval.
    pub valid_until: UnixTime,
}

/// The broadcast of the current interval.
#[derive(Debug)]
struct CurrentBroadcast {
    interval: IntervalNumber,
    broadcast: Broadcast,
    counter: u64,
}

/// Why a request is in flight.
#[derive(Debug)]
enum Pending {
    FetchIndex,
    FetchBatch(ephemera_proto::batch::BatchIndexEntry),
    FetchFilter(ephemera_proto::batch::BatchIndexEntry),
    FetchSealingKey,
    Verify(ResponseOpener),
    Upload(ResponseOpener),
    DecoyVerify(ResponseOpener),
    DecoyUpload(ResponseOpener),
    FetchTokenKeys,
    /// A real report's token verify (`POST /v2/verify`).
    TokenVerify(ResponseOpener),
    /// A decoy token verify.
    DecoyTokenVerify(ResponseOpener),
    /// The venue release index (`venue_releases.rs`).
    #[cfg(feature = "venue")]
    FetchReleaseIndex,
    /// One venue release the index listed.
    #[cfg(feature = "venue")]
    FetchRelease(ephemera_proto::venue::ReleaseIndexEntry),
}

/// The phone side of Ephemera as a sans-IO state machine, driven by `(time, event)`.
///
/// It never reads a clock, touches the network or draws from a global RNG: time is an
/// argument of every input, randomness comes from the seed given to [`Phone::new`], and
/// everything it wants sent comes out of [`poll_request`](Phone::poll_request).
///
/// # Call order
/// 1. [`Phone::new`] with a config, a [`Store`] and a fresh 32-byte seed from the OS.
/// 2. Inputs, in any order, each with the current time:
///    [`advertisement`](Phone::advertisement) (whenever the app (re)starts or rotates its
///    advertisement), [`handle_sighting`](Phone::handle_sighting) (each payload heard),
///    [`handle_timeout`](Phone::handle_timeout) (when the timer from `poll_timeout` fires),
///    [`handle_response`](Phone::handle_response) /
///    [`handle_failure`](Phone::handle_failure) (answers to requests),
///    [`handle_batch`](Phone::handle_batch) or [`begin_batch`](Phone::begin_batch) +
///    [`finish_batch`](Phone::finish_batch) (batches the app fetched itself, streamed),
///    [`start_report`](Phone::start_report) and [`start_sync`](Phone::start_sync) (user or
///    app actions).
/// 3. After every input, drain the outputs: [`poll_request`](Phone::poll_request) until
///    `None` (send each, hand the answer back with its id), then
///    [`poll_event`](Phone::poll_event) until `None`, then re-arm one timer at
///    [`poll_timeout`](Phone::poll_timeout) (interval boundaries, encounter closing, decoys,
///    sync). At an interval boundary call `advertisement` again.
#[derive(Debug)]
pub struct Phone<S: Store> {
    config: Arc<ClientConfig>,
    store: S,
    rng: ChaCha20Rng,
    /// `gaen`: own daily keys in use (today and yesterday at most).
    keys: Vec<(DayNumber, DailyKey)>,
    current: Option<CurrentBroadcast>,
    open: Vec<OpenEncounter>,
    assembler: Option<SliceAssembler>,
    /// `pet`: the key ratchet at the current interval and that interval's key pair (see
    /// `pet_keys.rs`); read from the store once.
    pet_keys: Option<pet_keys::PetKeys>,
    /// Whether `pet_keys` was read from the store.
    pet_keys_loaded: bool,
    requests: VecDeque<Request>,
    events: EventQueue,
    inflight: Vec<(RequestId, Pending)>,
    next_id: u64,
    sync: SyncState,
    /// The report on its way (kept in the store until acknowledged or refused).
    report: Option<ReportFlow>,
    /// Whether the report's current request is in flight.
    report_in_flight: bool,
    /// The decoy flow on its way (memory only).
    decoy: Option<DecoyFlow>,
    /// The node's sealing key, fetched with every sync round (memory only).
    sealing_key: Option<SealingPublicKey>,
    /// The authority's blind-token keys, fetched with every sync round when the config
    /// names a federation (memory only).
    token_keys: token_keys::HeldTokenKeys,
    /// Token keys a second node's set contradicted (`cross_check_token_keys`), in memory:
    /// never blinded under.
    contested_token_keys: std::collections::BTreeSet<ephemera_proto::token::TokenKeyId>,
    /// The real report's token exchange in flight: its blinding state and the keys it
    /// blinded under (memory only: every send blinds afresh).
    report_exchange: Option<token_keys::Exchange>,
    /// The real report's upload, sealed when its verify's answer came (in memory only).
    report_upload_sealed: Option<(Vec<u8>, ResponseOpener)>,
    /// The decoy flow's upload, sealed when its verify's answer came (in memory only).
    decoy_upload_sealed: Option<(Vec<u8>, ResponseOpener)>,
    /// A flow found no sealing key and waits for the next one.
    flows_await_key: bool,
    next_decoy: Option<UnixTime>,
    next_sync: Option<UnixTime>,
    maintained_day: Option<DayNumber>,
    /// The clock contract's state (see `clock.rs`).
    clock: ClockState,
    /// Node times given to `confirm_time` that disagreed with the app's time.
    clock_disagreements: u64,
    /// This phone's own scan instances (see `sighting.rs`).
    scan: ScanClock,
    /// When the open encounters were last checkpointed to the store.
    last_checkpoint: Option<UnixTime>,
    /// The open encounters changed since the last checkpoint.
    checkpoint_dirty: bool,
    /// The open encounters came from a checkpoint without tokens, removed at the next write.
    legacy_checkpoint: bool,
    /// Checkpoints written by this phone object (for the write-cost figure in status).
    checkpoints_written: u64,
    /// Bytes of those checkpoints.
    checkpoint_bytes: u64,
    /// When the last sync round completed.
    last_sync: Option<UnixTime>,
    /// The stable code of the last error an input returned or a round met.
    last_error: Option<&'static str>,
    /// Tracing paused by the user (kept in the store).
    paused: bool,
    /// The sunset order kept and whether the phone ended (see `sunset.rs`).
    sunset: sunset::SunsetState,
    /// The venue check-in still open (kept in the store until check-out; `venue.rs`).
    open_visit: Option<venue::OpenVisit>,
    /// The release step of the sync round (`venue_releases.rs`).
    #[cfg(feature = "venue")]
    releases: venue_releases::ReleaseSync,
}

impl<S: Store> Phone<S> {
    /// A phone with `config`, keeping its state in `store`, drawing randomness from a
    /// ChaCha20 generator seeded with `seed`.
    ///
    /// `seed` must be fresh for every `Phone` ever made (take it from the OS, as
    /// `client::ffi` does); tests pass fixed seeds to replay runs.
    ///
    /// # Errors
    /// [`ClientError::Config`] for an invalid config, [`ClientError::Store`] if the stored
    /// sync cursor cannot be read.
    pub fn new(
        config: impl Into<Arc<ClientConfig>>,
        store: S,
        seed: [u8; 32],
    ) -> Result<Self, ClientError> {
        let config = config.into();
        config.validate()?;
        let sync = SyncState::load(&store)?;
        let mut rng = ChaCha20Rng::from_seed(seed);
        let report = ReportFlow::load(&store, &mut rng)?;
        let decoy = DecoyFlow::load(&store)?;
        let events = EventQueue::load(&store)?;
        let clock = ClockState::load(&store)?;
        let (open, scan, legacy_checkpoint) = sighting::load_checkpoint(&store)?;
        let paused = Self::load_paused(&store)?;
        let sunset = sunset::SunsetState::load(&store, &config)?;
        let open_visit = venue::OpenVisit::load(&store)?;
        #[cfg(feature = "venue")]
        let releases = venue_releases::ReleaseSync::load(&store)?;
        let last_sync = store
            .meta(MetaKey::LastSync)?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map(|b| UnixTime(u64::from_le_bytes(b)));
        Ok(Phone {
            config,
            store,
            rng,
            keys: Vec::new(),
            current: None,
            open,
            assembler: None,
            pet_keys: None,
            pet_keys_loaded: false,
            requests: VecDeque::new(),
            events,
            inflight: Vec::new(),
            next_id: 0,
            sync,
            report,
            report_in_flight: false,
            decoy,
            sealing_key: None,
            token_keys: token_keys::HeldTokenKeys::Unknown,
            contested_token_keys: std::collections::BTreeSet::new(),
            report_exchange: None,
            report_upload_sealed: None,
            decoy_upload_sealed: None,
            flows_await_key: false,
            next_decoy: None,
            next_sync: None,
            maintained_day: None,
            clock,
            clock_disagreements: 0,
            scan,
            last_checkpoint: None,
            checkpoint_dirty: false,
            legacy_checkpoint,
            checkpoints_written: 0,
            checkpoint_bytes: 0,
            last_sync,
            last_error: None,
            paused,
            sunset,
            open_visit,
            #[cfg(feature = "venue")]
            releases,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Replaces the configuration (new risk thresholds and weights, cadences, trusted
    /// keys an authority published) without making a new phone. Open encounters and the
    /// report on its way carry on; the next matching uses the new risk parameters.
    ///
    /// # Errors
    /// [`ClientError::Config`] for an invalid config or a different scheme (a phone keeps
    /// its scheme for life: its keys and encounters belong to it).
    pub fn update_config(&mut self, config: ClientConfig) -> Result<(), ClientError> {
        config.validate()?;
        if config.scheme != self.config.scheme {
            return Err(crate::error::ConfigError::Field { field: "scheme" }.into());
        }
        self.config = Arc::new(config);
        Ok(())
    }

    /// The shared configuration. (Batches are verified with
    /// [`trusted_nodes`](Phone::trusted_nodes), which adds the keys followed through
    /// rollovers to the configured ones.)
    pub fn shared_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives back the store (e.g. to reopen a phone after a simulated restart).
    pub fn into_store(self) -> S {
        self.store
    }

    /// What to broadcast at `now`. Rotates at interval boundaries (and makes the day's key,
    /// or moves the `pet` key ratchet, first, keeping it durably before it is ever
    /// broadcast). For `pet`, each call advances the legacy slice carousel.
    ///
    /// # Errors
    /// [`ClientError::Store`] if the new daily key or ratchet state cannot be kept.
    pub fn advertisement(&mut self, now: UnixTime) -> Result<Advertisement, ClientError> {
        let now = self.tick(now)?;
        if self.paused {
            return Err(ClientError::Paused);
        }
        let interval = now.interval();
        if self.current.as_ref().map(|c| c.interval) != Some(interval) {
            self.start_broadcast(interval)?;
        }
        let current = self.current.as_mut().expect("set above");
        let legacy = current.broadcast.legacy_payload(current.counter);
        current.counter = current.counter.wrapping_add(1);
        Ok(Advertisement {
            interval,
            legacy,
            full: current.broadcast.full_payload(),
            valid_until: interval.plus(1).start(),
        })
    }

    /// Makes what is broadcast in `interval` (from the day's key, made first if need be)
    /// the current broadcast.
    fn start_broadcast(&mut self, interval: IntervalNumber) -> Result<(), ClientError> {
        let metadata = Metadata::v1_0(self.config.tx_power);
        let broadcast = match self.config.scheme {
            SchemeKind::Pet => {
                let key = self.pet_pair(interval)?.public();
                Broadcast::Pet {
                    key,
                    carousel: SliceCarousel::new(&key),
                }
            }
            SchemeKind::Gaen => self
                .daily_key(interval.day())?
                .broadcast(interval, &metadata),
        };
        self.current = Some(CurrentBroadcast {
            interval,
            broadcast,
            counter: 0,
        });
        Ok(())
    }

    /// Runs timers due at `now`: encounter closing, the daily retention purge, decoys and
    /// sync.
    ///
    /// # Errors
    /// [`ClientError::Store`] when the store fails.
    pub fn handle_timeout(&mut self, now: UnixTime) -> Result<(), ClientError> {
        let now = self.tick(now)?;
        if self.next_decoy.is_some_and(|t| t <= now) {
            self.start_decoy_flow(now)?;
            self.next_decoy = next_decoy(now, self.config.decoy.rate_per_day, &mut self.rng);
        }
        if self.next_sync.is_some_and(|t| t <= now) {
            self.start_sync(now)?;
            self.next_sync = Some(self.sync_after(now));
        }
        Ok(())
    }

    /// The next request to send, if any. Drain after every input.
    #[must_use]
    pub fn poll_request(&mut self) -> Option<Request> {
        self.requests.pop_front()
    }

    /// When [`handle_timeout`](Phone::handle_timeout) must next be called: the next interval
    /// boundary, an open encounter going stale, a decoy, a sync or a report retry,
    /// whichever is first. `None` until the phone has been given a time (any input): a
    /// phone never schedules from a time it does not know.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<UnixTime> {
        if self.clock.latest == 0 || self.sunset.ended.is_some() {
            return None;
        }
        let end = self.scheduled_end().map(|end| end.at());
        let gap = u64::from(self.config.encounter.max_gap_seconds);
        let boundary = UnixTime(self.clock.latest).interval().plus(1).start();
        let retry = self
            .report
            .as_ref()
            .filter(|_| !self.report_in_flight && !self.decoy_holds_report())
            .map(|r| r.next_attempt());
        let decoy = self.decoy.as_ref().and_then(DecoyFlow::due);
        let check_out = self
            .open_visit
            .as_ref()
            .map(|v| self.automatic_check_out(v.arrival()));
        self.open
            .iter()
            .map(|o| o.last_seen.plus_seconds(gap + 1))
            .chain(self.next_decoy)
            .chain(self.next_sync)
            .chain(retry)
            .chain(decoy)
            .chain(end)
            .chain(check_out)
            .chain(std::iter::once(boundary))
            .min()
    }

    /// Hands back the answer to request `id`.
    ///
    /// # Errors
    /// [`ClientError::UnknownRequest`] for an id not in flight; batch, decode and store
    /// errors of what the answer triggers (report failures also come as
    /// [`PhoneEvent::ReportFailed`](crate::PhoneEvent::ReportFailed)).
    pub fn handle_response(
        &mut self,
        now: UnixTime,
        id: RequestId,
        response: Response,
    ) -> Result<(), ClientError> {
        let now = self.tick_lenient(now)?;
        let pending = self.take_inflight(id)?;
        match pending {
            Pending::FetchIndex => self.on_index(now, &response),
            Pending::FetchBatch(entry) => {
                if response.status != 200 {
                    self.sync_failed();
                    return Ok(());
                }
                let trusted = self.trusted_nodes();
                let mut ingest = self.begin_batch(&trusted)?;
                let pushed = ingest.push(&response.body);
                match pushed {
                    Ok(()) => self.finish_fetched(now, ingest, entry).map(|_| ()),
                    Err(e) => {
                        self.batch_failed(&e);
                        Err(e)
                    }
                }
            }
            Pending::FetchFilter(entry) => self.on_filter(now, &response, entry),
            Pending::FetchSealingKey => self.on_sealing_key(now, &response),
            Pending::Verify(opener) => self.on_verify_response(now, &opener, &response, false),
            Pending::Upload(opener) => self.on_upload_response(now, &opener, &response),
            Pending::DecoyVerify(opener) | Pending::DecoyUpload(opener) => {
                self.on_decoy_response(now, &opener, &response, false)
            }
            Pending::FetchTokenKeys => self.on_token_keys(now, &response),
            Pending::TokenVerify(opener) => self.on_verify_response(now, &opener, &response, true),
            Pending::DecoyTokenVerify(opener) => {
                self.on_decoy_response(now, &opener, &response, true)
            }
            #[cfg(feature = "venue")]
            Pending::FetchReleaseIndex => self.on_release_index(now, &response),
            #[cfg(feature = "venue")]
            Pending::FetchRelease(entry) => self.on_release(now, &response, entry),
        }
    }

    /// Hands back the answer to request `id` as a status and a body reader. A batch body is
    /// streamed through the verifier and matcher in 64 KiB chunks (bounded memory however
    /// large the batch); other bodies are small and read whole (at most 4 MiB).
    ///
    /// # Errors
    /// As [`handle_response`](Phone::handle_response); a read error counts as a failure.
    pub fn handle_response_reader(
        &mut self,
        now: UnixTime,
        id: RequestId,
        status: u16,
        reader: &mut impl std::io::Read,
    ) -> Result<(), ClientError> {
        let is_batch = self
            .inflight
            .iter()
            .any(|(i, p)| *i == id && matches!(p, Pending::FetchBatch(_)));
        if !is_batch || status != 200 {
            let mut body = Vec::new();
            if std::io::Read::read_to_end(
                &mut std::io::Read::take(&mut *reader, 4 << 20),
                &mut body,
            )
            .is_err()
            {
                return self.handle_failure(now, id);
            }
            return self.handle_response(now, id, Response { status, body });
        }
        let now = self.tick_lenient(now)?;
        let Pending::FetchBatch(entry) = self.take_inflight(id)? else {
            unreachable!("checked above")
        };
        let trusted = self.trusted_nodes();
        let mut ingest = self.begin_batch(&trusted)?;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.sync_failed();
                    return Ok(());
                }
            };
            if let Err(e) = ingest.push(&buffer[..n]) {
                self.batch_failed(&e);
                return Err(e);
            }
        }
        self.finish_fetched(now, ingest, entry).map(|_| ())
    }

    /// Request `id` could not be delivered (no network, timeout).
    ///
    /// # Errors
    /// [`ClientError::UnknownRequest`] for an id not in flight.
    /// A report step is not failed by this: it is retried with backoff
    /// ([`PhoneEvent::ReportRetrying`](crate::PhoneEvent::ReportRetrying)).
    pub fn handle_failure(&mut self, now: UnixTime, id: RequestId) -> Result<(), ClientError> {
        let now = self.tick_lenient(now)?;
        match self.take_inflight(id)? {
            Pending::FetchIndex | Pending::FetchBatch(_) | Pending::FetchFilter(_) => {
                self.last_error = Some("transport");
                self.sync_failed();
            }
            Pending::FetchSealingKey | Pending::FetchTokenKeys => {
                self.last_error = Some("transport");
            }
            Pending::Verify(_) | Pending::Upload(_) | Pending::TokenVerify(_) => {
                self.last_error = Some("transport");
                self.report_retry_later(now)?;
            }
            Pending::DecoyVerify(_) | Pending::DecoyUpload(_) | Pending::DecoyTokenVerify(_) => {
                self.decoy_retry_later(now)?;
            }
            #[cfg(feature = "venue")]
            Pending::FetchReleaseIndex | Pending::FetchRelease(_) => {
                self.last_error = Some("transport");
                self.release_round_stopped();
            }
        }
        Ok(())
    }

    fn take_inflight(&mut self, id: RequestId) -> Result<Pending, ClientError> {
        let position = self
            .inflight
            .iter()
            .position(|(i, _)| *i == id)
            .ok_or(ClientError::UnknownRequest)?;
        Ok(self.inflight.swap_remove(position).1)
    }

    /// Queues `GET path` for `pending` (a key fetch, which carries no state), unless one is
    /// in flight already.
    fn fetch_once(&mut self, pending: Pending, path: &str) {
        let in_flight = self
            .inflight
            .iter()
            .any(|(_, p)| std::mem::discriminant(p) == std::mem::discriminant(&pending));
        if !in_flight {
            self.push_request(pending, Method::Get, path.to_owned(), None, Vec::new());
        }
    }

    fn push_request(
        &mut self,
        pending: Pending,
        method: Method,
        path: String,
        content_type: Option<&'static str>,
        body: Vec<u8>,
    ) -> RequestId {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        let purpose = match &pending {
            Pending::FetchIndex => Purpose::FetchIndex,
            Pending::FetchBatch(entry) => Purpose::FetchBatch(entry.id),
            Pending::FetchFilter(entry) => Purpose::FetchFilter(entry.id),
            Pending::FetchSealingKey => Purpose::FetchSealingKey,
            Pending::Verify(_) | Pending::TokenVerify(_) => Purpose::Verify,
            Pending::Upload(_) => Purpose::Upload,
            Pending::DecoyVerify(_) | Pending::DecoyTokenVerify(_) => Purpose::DecoyVerify,
            Pending::DecoyUpload(_) => Purpose::DecoyUpload,
            Pending::FetchTokenKeys => Purpose::FetchTokenKeys,
            #[cfg(feature = "venue")]
            Pending::FetchReleaseIndex => Purpose::FetchVenueReleaseIndex,
            #[cfg(feature = "venue")]
            Pending::FetchRelease(entry) => Purpose::FetchVenueRelease(entry.id),
        };
        self.requests.push_back(Request {
            id,
            purpose,
            method,
            path,
            content_type,
            body,
        });
        self.inflight.push((id, pending));
        id
    }

    /// The own `gaen` daily key of `day`: from memory, from the store, or made now and kept
    /// durably before use (`pet` keys come from the ratchet, `pet_keys.rs`).
    fn daily_key(&mut self, day: DayNumber) -> Result<&DailyKey, ClientError> {
        if let Some(i) = self.keys.iter().position(|(d, _)| *d == day) {
            return Ok(&self.keys[i].1);
        }
        let key = match self.store.own_key(day)? {
            Some(stored) if stored.scheme() == self.config.scheme => stored.daily_key(),
            _ => {
                let key = DailyKey::generate(self.config.scheme, &mut self.rng);
                self.store.put_own_key(day, &OwnKey::from_daily_key(&key))?;
                self.store.flush()?;
                key
            }
        };
        // Keep today's and yesterday's keys in memory at most.
        self.keys
            .retain(|(d, _)| d.0 + 1 >= day.0 && d.0 <= day.0 + 1);
        self.keys.push((day, key));
        Ok(&self.keys.last().expect("pushed").1)
    }

    /// Housekeeping before every input that acts on time (keys, sightings, purges): checks
    /// the clock contract (a past time is refused), then runs the daily purge on the
    /// confirmed time, closes stale encounters, schedules the first decoy and sync, and
    /// sends a report step that is due. Gives the time to act on.
    ///
    /// An ended phone refuses first; a phone whose sunset deadline has come ends now
    /// (`sunset.rs`) and refuses.
    fn tick(&mut self, now: UnixTime) -> Result<UnixTime, ClientError> {
        self.ensure_running()?;
        let now = match self
            .observe_time(now, Strictness::Strict)
            .and_then(|now| self.enforce_sunset(now).map(|()| now))
        {
            Ok(now) => now,
            Err(e) => {
                self.last_error = Some(e.code());
                return Err(e);
            }
        };
        self.housekeeping(now)?;
        Ok(now)
    }

    /// [`tick`](Phone::tick) for answers to requests: a past time is taken as the latest
    /// seen, so no answer is lost to a clock change.
    fn tick_lenient(&mut self, now: UnixTime) -> Result<UnixTime, ClientError> {
        self.ensure_running()?;
        let now = self.observe_time(now, Strictness::Lenient)?;
        self.enforce_sunset(now)?;
        self.housekeeping(now)?;
        Ok(now)
    }

    fn housekeeping(&mut self, now: UnixTime) -> Result<(), ClientError> {
        // Retention acts only on a confirmed time: an unexplained forward jump purges
        // nothing until the time is confirmed.
        let today = self.trusted_now().day();
        self.store.set_today(today);
        #[cfg(feature = "venue")]
        self.check_out_if_due(now)?;
        if self.maintained_day.is_none_or(|d| d < today) {
            self.maintained_day = Some(today);
            self.purge(today)?;
        }
        self.close_stale(now)?;
        self.advance_pet_keys(now)?;
        self.checkpoint_if_due(now)?;
        if self.next_decoy.is_none() {
            self.next_decoy = next_decoy(now, self.config.decoy.rate_per_day, &mut self.rng);
        }
        if self.next_sync.is_none() {
            let first = self.rng.next_u64() % self.config.sync.interval_seconds;
            self.next_sync = Some(now.plus_seconds(first));
        }
        self.drive_report(now)?;
        self.drive_decoy(now)?;
        Ok(())
    }

    /// The sealing key arrived: flows that waited for it go on now.
    fn resume_flows_awaiting_key(&mut self, now: UnixTime) -> Result<(), ClientError> {
        if !std::mem::take(&mut self.flows_await_key) {
            return Ok(());
        }
        if let Some(flow) = self.report.as_mut().filter(|_| !self.report_in_flight) {
            flow.hurry(now);
        }
        if let Some(flow) = self.decoy.as_mut() {
            flow.hurry(now);
        }
        self.drive_report(now)?;
        self.drive_decoy(now)
    }

    /// Retention: forget everything older than the retention period; for `pet`, also forget
    /// every own key kept in the store: `pet` keys live in the ratchet (`pet_keys.rs`),
    /// and a daily secret a phone kept before the ratchet serves nothing (encounters keep
    /// tokens, not keys).
    fn purge(&mut self, today: DayNumber) -> Result<(), ClientError> {
        let oldest_kept = today.minus(self.config.retention_days);
        self.store.purge_before(oldest_kept)?;
        venue::purge_warnings(&mut self.store, oldest_kept)?;
        if self.config.scheme == SchemeKind::Pet {
            for day in self.store.own_key_days()? {
                self.store.remove_own_key(day)?;
            }
            self.keys.clear();
        } else {
            self.keys.retain(|(d, _)| *d >= oldest_kept);
            self.purge_released(oldest_kept)?;
        }
        self.store.flush()?;
        Ok(())
    }

    fn sync_after(&mut self, now: UnixTime) -> UnixTime {
        let interval = self.config.sync.interval_seconds;
        let jitter = self.rng.next_u64() % (interval / 5 + 1);
        now.plus_seconds(interval - interval / 10 + jitter)
    }

    /// Forgets everything: keys, encounters, exposures, the report on its way, events,
    /// checkpoints and the sync cursor, in the store and in memory. The phone goes on as
    /// a new one (a fresh key at the next advertisement). What the sunset needs stays: a
    /// scheduled order (the phone still ends at its time), and on an ended phone the end
    /// marker (it stays ended).
    ///
    /// The store's [`erase_all`](Store::erase_all) deletes every record (a folder store
    /// replaces its database and deletes the old files); the bindings'
    /// `delete_all_data` also closes the store and deletes its folder.
    ///
    /// # Errors
    /// [`ClientError::Store`].
    pub fn erase_all_data(&mut self) -> Result<(), ClientError> {
        self.wipe()?;
        if let Some(ended) = &self.sunset.ended {
            let marker = postcard::to_allocvec(ended).expect("postcard into a Vec");
            self.store.set_meta(MetaKey::Ended, &marker)?;
            self.store.flush()?;
            return Ok(());
        }
        if let Some(order) = &self.sunset.scheduled {
            self.store
                .set_meta(MetaKey::SunsetOrder, &order.to_bytes())?;
        }
        // The clock's latest time stays (in memory and on disk): a past key must not come
        // back after an erase either.
        let latest = self.clock.latest;
        self.clock = ClockState::default();
        if latest != 0 {
            self.observe_time(UnixTime(latest), Strictness::Lenient)?;
        }
        self.store.flush()?;
        Ok(())
    }

    /// Erases the store and every piece of state in memory (the sunset state and the
    /// clock are the caller's to keep or not).
    fn wipe(&mut self) -> Result<(), ClientError> {
        self.store.erase_all()?;
        self.keys.clear();
        self.current = None;
        self.open.clear();
        self.assembler = None;
        self.forget_pet_keys();
        self.requests.clear();
        self.events = EventQueue::default();
        self.inflight.clear();
        self.sync = SyncState::load(&self.store)?;
        #[cfg(feature = "venue")]
        {
            self.releases = venue_releases::ReleaseSync::load(&self.store)?;
        }
        self.report = None;
        self.report_in_flight = false;
        self.decoy = None;
        self.sealing_key = None;
        self.token_keys = token_keys::HeldTokenKeys::Unknown;
        self.report_exchange = None;
        self.flows_await_key = false;
        self.scan = ScanClock::default();
        self.checkpoint_dirty = false;
        self.last_sync = None;
        self.last_error = None;
        self.paused = false;
        self.contested_token_keys.clear();
        self.report_upload_sealed = None;
        self.decoy_upload_sealed = None;
        self.next_decoy = None;
        self.next_sync = None;
        self.maintained_day = None;
        self.last_checkpoint = None;
        self.legacy_checkpoint = false;
        self.open_visit = None;
        Ok(())
    }

    /// Number of peers currently being heard (open encounters).
    pub fn open_encounters(&self) -> usize {
        self.open.len()
    }
}
