//! Reporting: build the report, get it certified, upload it; and the decoys that hide it.

use ephemera_proto::api::{ErrorBody, UploadResponse, VerifyRequest, VerifyResponse};
use ephemera_proto::auth::{
    AuthoritySigningKey, CertificateId, CertificateRequest, ReportHmac, ReportHmacKey, UploadCode,
};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::revision::{HmacBinding, RevisionSecret};
use ephemera_proto::sealed::{ResponseOpener, SealedRoute};
use ephemera_proto::token::{
    TOKEN_MODULUS_BITS, TokenExchange, TokenKeyId, TokenStatement, TokenUpload,
    TokenVerifyResponse, UploadToken,
};
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadRequest};
use ephemera_proto::wire;
use ephemera_proto::{DayNumber, PublishedToken, ReportContents, ReportType, SchemeKind, UnixTime};

use rand_core::Rng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::certificate_check::check_certificate;
use super::token_keys::{Exchange, VerifyRoute};
use super::{Pending, Phone};
use crate::error::{ClientError, ReportError, StoreError};
use crate::request::{PhoneEvent, Response};
use crate::risk::{ExposureWindow, HeardSpan};
use crate::store::{Evidence, MetaKey, Store};

/// The range (seconds) an upload follows its verify's answer by.
pub(super) const UPLOAD_DELAY_SECONDS: (u64, u64) = (1, 3);

/// Where a report on its way stands.
#[derive(Clone, Serialize, Deserialize)]
enum Stage {
    /// Waiting for the authority's certificate: the code is sent with the HMAC.
    Verify {
        /// The one-time code (secret; zeroed on drop).
        code: String,
    },
    /// Certified: the exact upload body, resent byte for byte (a node answers a
    /// byte-identical retry of an upload it already stored with the same revision token).
    Upload {
        /// The encoded upload request.
        body: Vec<u8>,
    },
    /// A blind token in hand (`docs/PROTOCOL.md` §4.4): the exact upload body, sent no
    /// earlier than `due` and then resent byte for byte (a node answers a byte-identical
    /// retry of a token upload it stored as a replay).
    TokenUpload {
        /// The encoded upload request (`UploadBody::Tokened` or `TokenRevision`).
        body: Vec<u8>,
        /// The upload time drawn from `report.upload_delay` when the token came (unix
        /// seconds): kept, so neither a restart, a retry nor a tap uploads earlier.
        due: u64,
    },
}

impl Stage {
    /// The earliest time this stage may be sent (unix seconds).
    fn not_before(&self) -> u64 {
        match self {
            Stage::TokenUpload { due, .. } => *due,
            Stage::Verify { .. } | Stage::Upload { .. } => 0,
        }
    }
}

/// A step of a report, unsealed: its route and inner body.
type Step = (SealedRoute, Zeroizing<Vec<u8>>);

/// Which earlier upload a revision revises, and how it proves the right to.
#[derive(Clone, Serialize, Deserialize)]
enum Revises {
    /// A version 1 upload (made before protocol version 2): the node's revision token.
    Token(Vec<u8>),
    /// A version 2 upload: its certificate id; the revision is signed with
    /// [`ReportFlow::secret`], the secret whose key that upload carried.
    Signed(CertificateId),
}

/// A report on its way, kept in the store (meta [`MetaKey::PendingReport2`]) from before
/// the first request is sent until the node acknowledges or definitively refuses it.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct ReportFlow {
    stage: Stage,
    /// Sends of the current stage so far.
    attempts: u32,
    /// When the next send is due (unix seconds).
    next_attempt: u64,
    /// The upload this one revises, if it is a revision.
    revises: Option<Revises>,
    /// A first report's revision secret (its key goes in the upload; kept once accepted, so
    /// this phone alone can revise it), or, for a signed revision, the revised upload's.
    secret: RevisionSecret,
    contents: ReportContents,
    hmac_key: ReportHmacKey,
    hmac: ReportHmac,
}

/// A report on its way as phones before protocol version 2 kept it (meta
/// [`MetaKey::PendingReport`]): read after an app update and carried on.
#[derive(Deserialize)]
struct ReportFlowV1 {
    stage: Stage,
    attempts: u32,
    next_attempt: u64,
    revises: Option<Vec<u8>>,
    contents: ReportContents,
    hmac_key: ReportHmacKey,
    hmac: ReportHmac,
}

impl std::fmt::Debug for ReportFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The code, the HMAC key and the report are secrets: only the stage shows.
        let stage = match self.stage {
            Stage::Verify { .. } => "verify",
            Stage::Upload { .. } => "upload",
            Stage::TokenUpload { .. } => "token upload",
        };
        f.debug_struct("ReportFlow")
            .field("stage", &stage)
            .field("attempts", &self.attempts)
            .field("next_attempt", &self.next_attempt)
            .finish_non_exhaustive()
    }
}

impl Drop for ReportFlow {
    fn drop(&mut self) {
        if let Stage::Verify { code } = &mut self.stage {
            code.zeroize();
        }
    }
}

impl ReportFlow {
    /// The report on its way, if any. One kept by an app before protocol version 2 is
    /// carried on: a certified one resends its version 1 upload byte for byte (a node
    /// accepts version 1 during the transition); an uncertified one keeps the HMAC it may
    /// have sent already (over the entries only), so once certified it is uploaded as
    /// version 1 too. (It gets a revision secret drawn from `rng`, which such an upload
    /// never uses.)
    pub(super) fn load(
        store: &impl Store,
        rng: &mut impl rand_core::CryptoRng,
    ) -> Result<Option<Self>, ClientError> {
        if let Some(bytes) = store.meta(MetaKey::PendingReport2)? {
            let bytes = Zeroizing::new(bytes);
            let flow = postcard::from_bytes(&bytes).map_err(|_| StoreError::Corrupt {
                what: "pending report",
            })?;
            return Ok(Some(flow));
        }
        let Some(bytes) = store.meta(MetaKey::PendingReport)? else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(bytes);
        let old: ReportFlowV1 = postcard::from_bytes(&bytes).map_err(|_| StoreError::Corrupt {
            what: "pending report",
        })?;
        Ok(Some(ReportFlow {
            stage: old.stage,
            attempts: old.attempts,
            next_attempt: old.next_attempt,
            revises: old.revises.map(Revises::Token),
            secret: RevisionSecret::generate(rng),
            contents: old.contents,
            hmac_key: old.hmac_key,
            hmac: old.hmac,
        }))
    }

    /// When the next send is due.
    pub(super) fn next_attempt(&self) -> UnixTime {
        UnixTime(self.next_attempt)
    }

    /// Whether the certificate (or blind token) is in hand.
    pub(super) fn certified(&self) -> bool {
        matches!(self.stage, Stage::Upload { .. } | Stage::TokenUpload { .. })
    }

    /// Sends of the current stage so far.
    pub(super) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Makes a waiting report due at `now` at the latest (the sealing key arrived), but
    /// never before a token upload's drawn time.
    pub(super) fn hurry(&mut self, now: UnixTime) {
        self.next_attempt = self.next_attempt.min(now.0).max(self.stage.not_before());
    }
}

/// What the last accepted upload needs for a revision (meta [`MetaKey::RevisionKey`]).
#[derive(Clone, Serialize, Deserialize)]
struct RevisionBasis {
    /// The upload's certificate id, which the revision names.
    certificate: CertificateId,
    /// The secret whose key the upload carried.
    secret: RevisionSecret,
    contents: ReportContents,
}

/// What a version 1 upload (made before protocol version 2) needs for a revision (meta
/// [`MetaKey::Revision`]).
#[derive(Clone, Serialize, Deserialize)]
struct RevisionBasisV1 {
    revision_token: Vec<u8>,
    contents: ReportContents,
}

/// What a started report holds (for the app to show before sending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportPreview {
    /// The scheme.
    pub scheme: SchemeKind,
    /// First day of the infectious window.
    pub first_day: DayNumber,
    /// Keys or tokens in the report.
    pub entries: usize,
}

impl<S: Store> Phone<S> {
    /// Starts a report after a positive test: builds the report for the infectious window,
    /// picks a fresh HMAC key and queues the verify request (`code`, HMAC). The upload
    /// follows when the authority's certificate arrives in
    /// [`handle_response`](Phone::handle_response).
    ///
    /// The window starts `days_before_onset` days before `symptom_onset`, or, without one,
    /// `days_before_test` days before `test_day` (today when `None`). `gaen` reports the
    /// own keys of the window (see below); `pet` reports the own
    /// tokens of the encounters in the window.
    ///
    /// `gaen` reports every own key of the window, today's included with its rolling period
    /// cut to the intervals elapsed so far (same-day release); the phone then rolls to a
    /// fresh key at once, so the reported key never covers an identifier broadcast after
    /// the report. The node holds each key until its (cut) period has ended plus 2 hours.
    ///
    /// # Errors
    /// [`ReportError::InProgress`], [`ReportError::NothingToReport`],
    /// [`ReportError::Invalid`] (protocol limits), [`ClientError::Store`].
    pub fn start_report(
        &mut self,
        now: UnixTime,
        code: &UploadCode,
        symptom_onset: Option<DayNumber>,
        test_day: Option<DayNumber>,
    ) -> Result<ReportPreview, ClientError> {
        let now = self.tick(now)?;
        if self.report.is_some() {
            return Err(ReportError::InProgress.into());
        }
        let first_day = self.infectious_window_start(now, symptom_onset, test_day);
        let mut contents = self.report_contents(now, first_day)?;
        if contents.is_empty() {
            return Err(ReportError::NothingToReport.into());
        }
        contents.canonicalize();
        contents
            .validate(now, &self.config.report.limits)
            .map_err(ReportError::from)?;
        if matches!(contents, ReportContents::Gaen(_)) {
            // Today's key went into the report cut at `now`: never broadcast it again.
            self.release_todays_key(now)?;
        }
        let preview = ReportPreview {
            scheme: contents.scheme(),
            first_day,
            entries: contents.len(),
        };
        let secret = RevisionSecret::generate(&mut self.rng);
        self.begin_flow(now, code, contents, None, secret)?;
        Ok(preview)
    }

    /// Revises the report uploaded last (a `likely` report becoming `confirmed`, or
    /// revoked after a negative test) with the new `code` the case worker issued: the same
    /// keys or tokens are certified again and uploaded with the node's revision token. It
    /// is kept and retried like a first report.
    ///
    /// # Errors
    /// [`ReportError::NoReport`] when no upload was accepted yet (or it was forgotten with
    /// the data), [`ReportError::InProgress`], [`ClientError::Store`].
    pub fn start_revision(&mut self, now: UnixTime, code: &UploadCode) -> Result<(), ClientError> {
        let now = self.tick(now)?;
        if self.report.is_some() {
            return Err(ReportError::InProgress.into());
        }
        let (contents, revises, secret) = match self.revision_basis()? {
            Some(basis) => (
                basis.contents,
                Revises::Signed(basis.certificate),
                basis.secret,
            ),
            None => {
                let basis = self.revision_basis_v1()?.ok_or(ReportError::NoReport)?;
                let secret = RevisionSecret::generate(&mut self.rng);
                (basis.contents, Revises::Token(basis.revision_token), secret)
            }
        };
        self.begin_flow(now, code, contents, Some(revises), secret)
    }

    /// Whether the last accepted upload can be revised.
    pub fn can_revise(&self) -> bool {
        matches!(self.revision_basis(), Ok(Some(_)))
            || matches!(self.revision_basis_v1(), Ok(Some(_)))
    }

    fn revision_basis(&self) -> Result<Option<RevisionBasis>, ClientError> {
        read_meta(&self.store, MetaKey::RevisionKey, "revision basis")
    }

    fn revision_basis_v1(&self) -> Result<Option<RevisionBasisV1>, ClientError> {
        read_meta(&self.store, MetaKey::Revision, "revision basis")
    }

    /// Keeps the new report durably, tells the app, and sends the verify request.
    fn begin_flow(
        &mut self,
        now: UnixTime,
        code: &UploadCode,
        contents: ReportContents,
        revises: Option<Revises>,
        secret: RevisionSecret,
    ) -> Result<(), ClientError> {
        let hmac_key = ReportHmacKey::generate(&mut self.rng);
        // Version 2: the certified HMAC covers the revision key (`docs/PROTOCOL.md` §4.2), so
        // nobody who relays or replays the upload can attach a key of their own.
        let binding = match &revises {
            None => HmacBinding::Upload(secret.key()),
            Some(Revises::Signed(_)) => HmacBinding::Revision(secret.key()),
            Some(Revises::Token(_)) => HmacBinding::Unbound,
        };
        let hmac = hmac_key.authenticate_bound(&contents, binding);
        self.report_upload_sealed = None;
        self.report = Some(ReportFlow {
            stage: Stage::Verify {
                code: code.reveal(),
            },
            attempts: 0,
            next_attempt: now.0,
            revises,
            secret,
            contents,
            hmac_key,
            hmac,
        });
        // Durable before anything is sent: a kill from here on resumes the report.
        self.save_report()?;
        self.push_event(PhoneEvent::ReportPending)?;
        self.store.flush()?;
        self.drive_report(now)
    }

    /// Keeps the report on its way in the store (not flushed).
    fn save_report(&mut self) -> Result<(), ClientError> {
        match &self.report {
            Some(flow) => {
                let bytes =
                    Zeroizing::new(postcard::to_allocvec(flow).expect("postcard into a Vec"));
                self.store.set_meta(MetaKey::PendingReport2, &bytes)?;
            }
            None => self.store.remove_meta(MetaKey::PendingReport2)?,
        }
        // Moved on (or finished): what an app before protocol version 2 kept is gone.
        self.store.remove_meta(MetaKey::PendingReport)?;
        Ok(())
    }

    /// Sends the report's current step, sealed to the node, if it is due and not already
    /// in flight. Without the node's sealing key it starts a sync round (which brings it)
    /// and waits, with the retry backoff.
    pub(super) fn drive_report(&mut self, now: UnixTime) -> Result<(), ClientError> {
        let Some(flow) = self.report.as_ref() else {
            return Ok(());
        };
        if self.report_in_flight || flow.next_attempt > now.0 || flow.stage.not_before() > now.0 {
            return Ok(());
        }
        let attempts = flow.attempts;
        let verifying = matches!(flow.stage, Stage::Verify { .. });
        if verifying {
            // One person's flows never interleave on the wire: a decoy flow past its
            // verify ends first (its answer drives this report on), and one whose verify
            // has not gone ends here.
            if self.decoy_holds_report() {
                return Ok(());
            }
            self.drop_unsent_decoy()?;
        }
        let upload_sealed = if verifying {
            None
        } else {
            self.report_upload_sealed.take()
        };
        let (route, (body, opener)) = match upload_sealed {
            // Sealed when the verify's answer came, as a decoy's upload is: the send itself
            // is the same work for both.
            Some(sealed) => (SealedRoute::Upload, sealed),
            None => {
                let step = match self.sealing_key_or_sync(now) {
                    Some(key) => self.report_step(now)?.map(|step| (key, step)),
                    None => None,
                };
                let Some((key, (route, inner))) = step else {
                    // Sent as soon as the sync round brings the sealing key (and the token
                    // keys); should it fail, the backoff holds the next try (no event:
                    // nothing was sent).
                    self.flows_await_key = true;
                    let delay = self.retry_delay(attempts + 1);
                    if let Some(flow) = self.report.as_mut() {
                        flow.next_attempt = now.0 + delay;
                    }
                    return Ok(());
                };
                // Sealed afresh at every send: a proxy cannot link a retry to its first
                // attempt.
                let Some(sealed) = self.seal(key, route, &inner) else {
                    return self.report_retry_later(now);
                };
                (route, sealed)
            }
        };
        let pending = match route {
            SealedRoute::Verify => Pending::Verify(opener),
            SealedRoute::TokenVerify => Pending::TokenVerify(opener),
            SealedRoute::Upload => Pending::Upload(opener),
        };
        if let Some(flow) = self.report.as_mut() {
            flow.attempts += 1;
        }
        self.report_in_flight = true;
        // Nothing is written at a send (a decoy's send writes nothing either): the attempt
        // count is kept with the answer, or with the retry's backoff.
        self.push_sealed(pending, route, body);
        Ok(())
    }

    /// The report's current step, unsealed: its route and inner body; `None` while a
    /// verify waits for the token keys.
    ///
    /// A verify goes for a blind token when the node has token keys for today (a
    /// revision of a version 1 upload excepted: its node token proves the right to revise
    /// only beside a certificate), blinded afresh at every send (the blinding state lives
    /// in memory until the answer: a retry never repeats a blinded message), and for a
    /// certificate otherwise.
    fn report_step(&mut self, now: UnixTime) -> Result<Option<Step>, ClientError> {
        let flow = self.report.as_ref().ok_or(StoreError::Corrupt {
            what: "pending report",
        })?;
        let code = match &flow.stage {
            Stage::Verify { code } => UploadCode::parse(code).map_err(|_| StoreError::Corrupt {
                what: "pending report code",
            })?,
            Stage::Upload { body } | Stage::TokenUpload { body, .. } => {
                return Ok(Some((SealedRoute::Upload, Zeroizing::new(body.clone()))));
            }
        };
        let route = if matches!(flow.revises, Some(Revises::Token(_))) {
            VerifyRoute::Certificate
        } else {
            self.verify_route(now)
        };
        let keys = match route {
            VerifyRoute::Wait => return Ok(None),
            VerifyRoute::Certificate => {
                let flow = self.report.as_ref().expect("checked above");
                let body = VerifyRequest::real(&code, &flow.hmac).to_padded_json();
                return Ok(Some((SealedRoute::Verify, Zeroizing::new(body))));
            }
            VerifyRoute::Token(keys) => keys,
        };
        let flow = self.report.as_ref().expect("checked above");
        let binding = match flow.revises {
            None => HmacBinding::Upload(flow.secret.key()),
            Some(_) => HmacBinding::Revision(flow.secret.key()),
        };
        let statement = TokenStatement {
            audience: &self
                .config
                .report
                .audience()
                .expect("a token route has one"),
            contents: &flow.contents,
            binding,
        };
        match TokenExchange::prepare(&keys, now.day(), &statement, &code, &mut self.rng) {
            Ok((exchange, request)) => {
                self.report_exchange = Some(Exchange { exchange, keys });
                Ok(Some((
                    SealedRoute::TokenVerify,
                    Zeroizing::new(request.to_padded_json()),
                )))
            }
            Err(_) => {
                // A key that does not blind: fetch the set again, and wait for it.
                self.refetch_token_keys(now);
                Ok(None)
            }
        }
    }

    /// Seconds between a verify's answer and its upload, drawn alike for real and decoy
    /// flows: [`UPLOAD_DELAY_SECONDS`]. Sent at once, the upload's gap showed what the phone
    /// did in between (a certificate kept and flushed, or a decoy built), which an observer
    /// on the path could time to the tenth of a millisecond.
    pub(super) fn draw_upload_delay(&mut self) -> u64 {
        let (low, high) = UPLOAD_DELAY_SECONDS;
        low + self.rng.next_u64() % (high - low + 1)
    }

    /// Seconds to wait before the next send after `attempts` sends without a definitive
    /// answer: doubling from `report.retry_initial_seconds` up to `retry_max_seconds`, plus
    /// up to a quarter more, so phones cut off together do not retry together. Real and
    /// decoy steps share it.
    pub(super) fn retry_delay(&mut self, attempts: u32) -> u64 {
        let config = &self.config.report;
        let doublings = attempts.saturating_sub(1).min(20);
        let delay = config
            .retry_initial_seconds
            .saturating_mul(1 << doublings)
            .min(config.retry_max_seconds);
        delay + self.rng.next_u64() % (delay / 4 + 1)
    }

    /// No definitive answer (no network, 5xx, 429): try again later, with backoff.
    pub(super) fn report_retry_later(&mut self, now: UnixTime) -> Result<(), ClientError> {
        self.report_in_flight = false;
        let Some(attempts) = self.report.as_ref().map(|f| f.attempts) else {
            return Ok(());
        };
        let delay = self.retry_delay(attempts);
        let flow = self.report.as_mut().expect("checked above");
        flow.next_attempt = (now.0 + delay).max(flow.stage.not_before());
        let (attempt, next_attempt) = (flow.attempts, UnixTime(flow.next_attempt));
        self.save_report()?;
        self.push_event(PhoneEvent::ReportRetrying {
            attempt,
            next_attempt,
        })?;
        self.store.flush()?;
        Ok(())
    }

    /// A definitive answer: forget the report, tell the app.
    fn report_failed(&mut self, reason: ReportError) -> Result<(), ClientError> {
        self.report_in_flight = false;
        self.report = None;
        self.save_report()?;
        self.push_event(PhoneEvent::ReportFailed(reason))?;
        self.store.flush()?;
        Ok(())
    }

    /// Sends the report on its way now instead of at its next retry time (the user tapped
    /// "retry", or the network came back).
    ///
    /// # Errors
    /// [`ReportError::NoReport`] when no report is on its way; [`ClientError::Store`].
    pub fn retry_report(&mut self, now: UnixTime) -> Result<(), ClientError> {
        let now = self.tick(now)?;
        let flow = self.report.as_mut().ok_or(ReportError::NoReport)?;
        // A token upload still waits for its drawn time (`hurry` keeps it).
        flow.hurry(now);
        self.drive_report(now)
    }

    fn infectious_window_start(
        &self,
        now: UnixTime,
        symptom_onset: Option<DayNumber>,
        test_day: Option<DayNumber>,
    ) -> DayNumber {
        let report = &self.config.report;
        let start = match symptom_onset {
            Some(onset) => onset.minus(report.days_before_onset),
            None => test_day.unwrap_or(now.day()).minus(report.days_before_test),
        };
        start.max(now.day().minus(self.config.retention_days))
    }

    /// The report's contents: `gaen` keys of the window, or `pet` tokens of its encounters
    /// that could count for the peer ([`ReportConfig::upload_margin_db`]).
    ///
    /// [`ReportConfig::upload_margin_db`]: crate::config::ReportConfig::upload_margin_db
    fn report_contents(
        &mut self,
        now: UnixTime,
        first_day: DayNumber,
    ) -> Result<ReportContents, ClientError> {
        match self.config.scheme {
            SchemeKind::Gaen => Ok(ReportContents::Gaen(self.gaen_report_keys(now, first_day)?)),
            SchemeKind::Pet => {
                let mut records = Vec::new();
                self.store.for_each_encounter(&mut |r| {
                    if let Evidence::Pet { own, .. } = r.evidence
                        && r.day() >= first_day
                    {
                        records.push((own, r.clone()));
                    }
                })?;
                let counts = match self.config.report.upload_margin_db {
                    None => vec![true; records.len()],
                    Some(margin) => could_count_for_the_peer(&records, margin, &self.config),
                };
                let mut tokens: Vec<PublishedToken> = records
                    .iter()
                    .zip(counts)
                    .filter(|(_, counts)| *counts)
                    .map(|((own, r), _)| PublishedToken {
                        day: r.day(),
                        token: *own,
                    })
                    .collect();
                tokens.sort_unstable();
                tokens.dedup_by_key(|t| t.token);
                let max = self.config.report.limits.max_tokens;
                if tokens.len() > max {
                    // Keep the most recent days: closest to the test, most relevant.
                    tokens.sort_unstable_by_key(|t| std::cmp::Reverse(t.day));
                    tokens.truncate(max);
                }
                Ok(ReportContents::Pet(tokens))
            }
        }
    }

    /// Ends the report on a verify that gave no usable certificate or token (a refused
    /// code, a certificate that does not check out, a token that does not unblind): every
    /// verify is followed by an upload, as every decoy's is, so a decoy upload of this
    /// report's size goes after the usual delay (for a token verify: at a time drawn from
    /// `report.upload_delay`, as the real upload would have gone).
    fn report_failed_with_decoy_upload(
        &mut self,
        now: UnixTime,
        error: ReportError,
        token: bool,
    ) -> Result<(), ClientError> {
        let Some(flow) = self.report.as_ref() else {
            return Ok(());
        };
        let size = upload_size_of(&flow.contents, token, &mut self.rng);
        let due = token.then(|| {
            self.config
                .report
                .upload_delay
                .upload_at(now, &mut self.rng)
        });
        self.start_decoy_upload(now, size, due)?;
        self.report_failed(error)?;
        self.drive_decoy(now)
    }

    /// The answer to a verify (`token`: a token verify, `POST /v2/verify`). A refused code
    /// ends the report; `stale-token-keys` (409: nothing spent) fetches the token keys again
    /// and blinds afresh; an answer that is not definitive (`token-keys-not-ready` is a
    /// 503) is retried.
    pub(super) fn on_verify_response(
        &mut self,
        now: UnixTime,
        opener: &ResponseOpener,
        response: &Response,
        token: bool,
    ) -> Result<(), ClientError> {
        self.report_in_flight = false;
        let exchange = self.report_exchange.take();
        let response = &self.unseal(opener, response);
        if self.report.is_none() {
            return Ok(());
        }
        if definitive(response.status).is_none() {
            return self.report_retry_later(now);
        }
        if response.status != 200 {
            let code = error_code(&response.body);
            if token && response.status == 409 && code == "stale-token-keys" {
                self.refetch_token_keys(now);
                self.flows_await_key = true;
                return self.report_retry_later(now);
            }
            let refused = ReportError::Refused {
                status: response.status,
                code,
            };
            return self.report_failed_with_decoy_upload(now, refused, token);
        }
        if token {
            self.on_token(now, &response.body, exchange)
        } else {
            self.on_certificate(now, &response.body)
        }
    }

    /// A certificate came: check it, build the upload and keep it, sealed for its send
    /// 1–3 s later.
    fn on_certificate(&mut self, now: UnixTime, body: &[u8]) -> Result<(), ClientError> {
        let Some(flow) = self.report.as_ref() else {
            return Ok(());
        };
        let certificate = serde_json::from_slice::<VerifyResponse>(body)
            .ok()
            .and_then(|r| r.certificate().ok())
            .filter(|c| {
                check_certificate(
                    c,
                    &flow.hmac,
                    flow.revises.is_some(),
                    &self.config.report.trusted_authorities,
                    now,
                )
                .is_ok()
            });
        let Some(certificate) = certificate else {
            return self.report_failed_with_decoy_upload(now, ReportError::BadCertificate, false);
        };
        let upload = SignedUpload {
            contents: flow.contents.clone(),
            certificate,
            hmac_key: flow.hmac_key.clone(),
        };
        let request = match &flow.revises {
            // A report an earlier app certified over the entries only (carried on by
            // `ReportFlow::load`) goes as the version 1 upload its certificate fits.
            None if flow.hmac == flow.hmac_key.authenticate(&flow.contents) => {
                UploadRequest::real_v1(upload)
            }
            None => UploadRequest::real(upload, flow.secret.key()),
            Some(Revises::Signed(original)) => {
                UploadRequest::revision(upload, *original, &flow.secret)
            }
            Some(Revises::Token(token)) => UploadRequest::padded(UploadBody::RevisionV1 {
                upload,
                revision_token: token.clone(),
            }),
        };
        let delay = self.draw_upload_delay();
        let body = wire::encode(&request);
        self.report_upload_sealed = self.seal_now(SealedRoute::Upload, &body);
        let flow = self.report.as_mut().expect("checked above");
        flow.stage = Stage::Upload { body };
        flow.attempts = 0;
        flow.next_attempt = now.0 + delay;
        // The certificate is kept before the upload is sent: the code is spent now.
        self.save_report()?;
        self.store.flush()?;
        self.drive_report(now)
    }

    /// A blind signature came: unblind the token, build the upload and keep it with its
    /// drawn upload time (`report.upload_delay`), durably, before anything else: the code
    /// is spent now.
    fn on_token(
        &mut self,
        now: UnixTime,
        body: &[u8],
        exchange: Option<Exchange>,
    ) -> Result<(), ClientError> {
        let Some(flow) = self.report.as_ref() else {
            return Ok(());
        };
        let token = exchange.and_then(|Exchange { exchange, keys }| {
            let answer = serde_json::from_slice::<TokenVerifyResponse>(body).ok()?;
            exchange.finish(&keys, &answer).ok()
        });
        let (Some(token), None | Some(Revises::Signed(_))) = (token, &flow.revises) else {
            return self.report_failed_with_decoy_upload(now, ReportError::BadCertificate, true);
        };
        let upload = TokenUpload {
            contents: flow.contents.clone(),
            token,
        };
        let request = match &flow.revises {
            Some(Revises::Signed(original)) => {
                UploadRequest::token_revision(upload, *original, &flow.secret)
            }
            _ => UploadRequest::tokened(upload, flow.secret.key()),
        };
        let body = wire::encode(&request);
        let due = self
            .config
            .report
            .upload_delay
            .upload_at(now, &mut self.rng);
        let flow = self.report.as_mut().expect("checked above");
        flow.stage = Stage::TokenUpload { body, due: due.0 };
        flow.attempts = 0;
        flow.next_attempt = due.0;
        // The token is kept before anything else: the code is spent now.
        self.save_report()?;
        self.store.flush()?;
        self.drive_report(now)
    }

    pub(super) fn on_upload_response(
        &mut self,
        now: UnixTime,
        opener: &ResponseOpener,
        response: &Response,
    ) -> Result<(), ClientError> {
        self.report_in_flight = false;
        let response = &self.unseal(opener, response);
        if self.report.is_none() {
            return Ok(());
        }
        if definitive(response.status).is_none() {
            return self.report_retry_later(now);
        }
        if response.status != 200 {
            let code = error_code(&response.body);
            let reason = if code == "certificate-expired" || code == "token-expired" {
                ReportError::CertificateExpired
            } else {
                ReportError::UploadRefused {
                    status: response.status,
                    code,
                }
            };
            return self.report_failed(reason);
        }
        let revision_token = serde_json::from_slice::<UploadResponse>(&response.body)
            .map(|r| r.revision_token)
            .unwrap_or_default();
        let flow = self.report.take().expect("checked above");
        self.report_in_flight = false;
        self.keep_revision_basis(flow, &revision_token)?;
        self.save_report()?;
        self.push_event(PhoneEvent::ReportUploaded { revision_token })?;
        self.store.flush()?;
        Ok(())
    }

    /// Keeps what revising the upload `flow` just had accepted takes: its certificate id
    /// and revision secret for a version 2 upload, the node's token for a version 1 upload
    /// (one an app before protocol version 2 certified). An accepted revision is never
    /// revised again (only `likely` reports are): nothing is kept for it.
    fn keep_revision_basis(
        &mut self,
        flow: ReportFlow,
        revision_token: &str,
    ) -> Result<(), ClientError> {
        let (Stage::Upload { body } | Stage::TokenUpload { body, .. }) = &flow.stage else {
            return Ok(());
        };
        let sent = wire::decode::<UploadRequest>(body).map_err(|_| StoreError::Corrupt {
            what: "pending report upload",
        })?;
        self.store.remove_meta(MetaKey::RevisionKey)?;
        self.store.remove_meta(MetaKey::Revision)?;
        let (key, bytes) = match sent.body {
            UploadBody::Real { upload, .. } => (
                MetaKey::RevisionKey,
                postcard::to_allocvec(&RevisionBasis {
                    certificate: upload.certificate.certificate.id,
                    secret: flow.secret.clone(),
                    contents: flow.contents.clone(),
                }),
            ),
            // A token upload's certificate id is its token's id: the node certifies it
            // under that id, and a revision names it.
            UploadBody::Tokened { upload, .. } => (
                MetaKey::RevisionKey,
                postcard::to_allocvec(&RevisionBasis {
                    certificate: upload.certificate_id(),
                    secret: flow.secret.clone(),
                    contents: flow.contents.clone(),
                }),
            ),
            UploadBody::RealV1(_) => (
                MetaKey::Revision,
                postcard::to_allocvec(&RevisionBasisV1 {
                    revision_token: decode_hex(revision_token).unwrap_or_default(),
                    contents: flow.contents.clone(),
                }),
            ),
            UploadBody::Decoy
            | UploadBody::Revision { .. }
            | UploadBody::RevisionV1 { .. }
            | UploadBody::TokenRevision { .. } => {
                return Ok(());
            }
        };
        let bytes = Zeroizing::new(bytes.expect("postcard into a Vec"));
        self.store.set_meta(key, &bytes)?;
        Ok(())
    }

    /// Whether a report is on its way (kept, sent or waiting for a retry).
    pub fn report_in_progress(&self) -> bool {
        self.report.is_some()
    }

    /// The length of the upload request this phone's real report would have now (no
    /// onset, tested today: the default window), for decoy uploads.
    ///
    /// # Errors
    /// [`ClientError::Store`].
    pub(super) fn real_upload_size(&mut self, now: UnixTime) -> Result<usize, ClientError> {
        let first_day = self.infectious_window_start(now, None, None);
        let mut contents = self.report_contents(now, first_day)?;
        contents.canonicalize();
        let token = self.token_verify_shape(now).is_some();
        Ok(upload_size_of(&contents, token, &mut self.rng))
    }
}

/// Which of `records` (own token, encounter) could count for the peer: scored as the peer
/// scores a `pet` window (its heard span, standard infectiousness, the report type of a
/// token), with attenuations taken `margin_db` closer than this phone measured, an
/// encounter counts when the chain of this phone's windows of its day that it belongs to
/// (all peers together) reaches the window minimum. The peer's chain of this phone's
/// matched windows is a part of that chain, so it cannot reach the minimum when the whole
/// does not (unless the peer heard the contact more than the margin closer).
fn could_count_for_the_peer(
    records: &[(EncounterToken, crate::store::EncounterRecord)],
    margin_db: u8,
    config: &crate::config::ClientConfig,
) -> Vec<bool> {
    let risk = &config.risk;
    let windows: Vec<ExposureWindow> = records
        .iter()
        .map(|(_, r)| {
            let offset = match r.level_kind {
                crate::signal::LevelKind::Attenuation => 0,
                crate::signal::LevelKind::NegatedRssi => {
                    i32::from(config.encounter.assumed_tx_power)
                }
            };
            ExposureWindow {
                day: r.day(),
                seconds_per_bucket: r.signal.buckets(offset - i32::from(margin_db), risk),
                infectiousness: risk.infectiousness_when_onset_missing,
                report_type: risk.report_type_when_missing,
                heard: Some(HeardSpan {
                    first: r.first_seen,
                    last: r.last_seen,
                }),
            }
        })
        .collect();
    let mut counts = vec![false; records.len()];
    let mut days: Vec<DayNumber> = windows.iter().map(|w| w.day).collect();
    days.sort_unstable();
    days.dedup();
    for day in days {
        let positions: Vec<usize> = (0..windows.len())
            .filter(|i| windows[*i].day == day)
            .collect();
        let of_day: Vec<&ExposureWindow> = positions.iter().map(|i| &windows[*i]).collect();
        for chain in risk.chains(&of_day) {
            let score: f64 = chain.iter().map(|(_, score)| score).sum();
            if score > 0.0 && score >= risk.minimum_window_score {
                for (i, _) in chain {
                    counts[positions[i]] = true;
                }
            }
        }
    }
    counts
}

/// The encoded length of a first upload of `contents`: built with a stand-in certificate
/// (or, with `token`, a stand-in blind token) of the real shape, so decoys get the bucket
/// the real upload would get.
fn upload_size_of(
    contents: &ReportContents,
    token: bool,
    rng: &mut impl rand_core::CryptoRng,
) -> usize {
    if token {
        let mut stand_in = UploadToken {
            key: TokenKeyId([0; 32]),
            randomizer: [0; 32],
            signature: vec![0; TOKEN_MODULUS_BITS / 8],
        };
        rng.fill_bytes(&mut stand_in.key.0);
        rng.fill_bytes(&mut stand_in.randomizer);
        rng.fill_bytes(&mut stand_in.signature);
        let upload = TokenUpload {
            contents: contents.clone(),
            token: stand_in,
        };
        let revision_key = RevisionSecret::generate(rng).key();
        return wire::encode(&UploadRequest::tokened(upload, revision_key)).len();
    }
    let authority = AuthoritySigningKey::generate(rng);
    let hmac_key = ReportHmacKey::generate(rng);
    let certificate = authority.issue(
        &CertificateRequest {
            report_hmac: hmac_key.authenticate(contents),
            test_type: ReportType::ConfirmedTest,
            symptom_onset: None,
        },
        UnixTime(0),
        3600,
        rng,
    );
    let revision_key = RevisionSecret::generate(rng).key();
    wire::encode(&UploadRequest::real(
        SignedUpload {
            contents: contents.clone(),
            certificate,
            hmac_key,
        },
        revision_key,
    ))
    .len()
}

/// A small piece of kept state, decoded; a damaged one is [`StoreError::Corrupt`].
fn read_meta<T: serde::de::DeserializeOwned>(
    store: &impl Store,
    key: MetaKey,
    what: &'static str,
) -> Result<Option<T>, ClientError> {
    let Some(bytes) = store.meta(key)? else {
        return Ok(None);
    };
    let bytes = Zeroizing::new(bytes);
    Ok(Some(
        postcard::from_bytes(&bytes).map_err(|_| StoreError::Corrupt { what })?,
    ))
}

/// `Some(status)` when an answer with `status` is definitive; `None` when the request may
/// succeed if sent again (a 5xx, a 429, or a 408).
pub(super) fn definitive(status: u16) -> Option<u16> {
    match status {
        408 | 429 | 500..=599 => None,
        _ => Some(status),
    }
}

/// Lower-case hex to bytes.
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The kebab-case code of an API error body, or empty.
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.error)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::decode_hex;

    proptest! {
        /// The node's revision token is outside bytes: any string decodes or is refused.
        #[test]
        fn any_revision_token_text_is_decoded_or_refused(text in ".{0,80}") {
            if let Some(bytes) = decode_hex(&text) {
                prop_assert_eq!(bytes.len() * 2, text.len());
            }
        }

        /// Lower-case hex round-trips.
        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(decode_hex(&text), Some(bytes));
        }
    }
}
