//! Reporting: build the report, get it certified, upload it; and the decoys that hide it.

use ephemera_proto::api::{ErrorBody, UploadResponse, VerifyRequest, VerifyResponse};
use ephemera_proto::auth::{
    AuthoritySigningKey, CertificateRequest, ReportHmac, ReportHmacKey, UploadCode,
};
use ephemera_proto::sealed::{ResponseOpener, SealedRoute};
use ephemera_proto::upload::{SignedUpload, UploadBody, UploadRequest, padded_request_size};
use ephemera_proto::wire;
use ephemera_proto::{DayNumber, PublishedToken, ReportContents, ReportType, SchemeKind, UnixTime};

use rand_core::Rng;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{Pending, Phone};
use crate::error::{ClientError, ReportError, StoreError};
use crate::request::{PhoneEvent, Response};
use crate::store::{Evidence, MetaKey, Store};

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
}

/// A report on its way, kept in the store (meta [`MetaKey::PendingReport`]) from before the
/// first request is sent until the node acknowledges or definitively refuses it.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct ReportFlow {
    stage: Stage,
    /// Sends of the current stage so far.
    attempts: u32,
    /// When the next send is due (unix seconds).
    next_attempt: u64,
    /// The revision token of the report this one revises, if it is a revision.
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
    pub(super) fn load(store: &impl Store) -> Result<Option<Self>, ClientError> {
        let Some(bytes) = store.meta(MetaKey::PendingReport)? else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(bytes);
        let flow = postcard::from_bytes(&bytes).map_err(|_| StoreError::Corrupt {
            what: "pending report",
        })?;
        Ok(Some(flow))
    }

    /// When the next send is due.
    pub(super) fn next_attempt(&self) -> UnixTime {
        UnixTime(self.next_attempt)
    }

    /// Whether the certificate is in hand.
    pub(super) fn certified(&self) -> bool {
        matches!(self.stage, Stage::Upload { .. })
    }

    /// Sends of the current stage so far.
    pub(super) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Makes a waiting report due at `now` at the latest (the sealing key arrived).
    pub(super) fn hurry(&mut self, now: UnixTime) {
        self.next_attempt = self.next_attempt.min(now.0);
    }
}

/// What the last accepted upload needs for a revision (meta [`MetaKey::Revision`]).
#[derive(Clone, Serialize, Deserialize)]
struct RevisionBasis {
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
        self.begin_flow(now, code, contents, None)?;
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
        let basis = self.revision_basis()?.ok_or(ReportError::NoReport)?;
        self.begin_flow(
            now,
            code,
            basis.contents.clone(),
            Some(basis.revision_token.clone()),
        )
    }

    /// Whether the last accepted upload can be revised.
    pub fn can_revise(&self) -> bool {
        matches!(self.revision_basis(), Ok(Some(_)))
    }

    fn revision_basis(&self) -> Result<Option<RevisionBasis>, ClientError> {
        let Some(bytes) = self.store.meta(MetaKey::Revision)? else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(bytes);
        Ok(Some(postcard::from_bytes(&bytes).map_err(|_| {
            StoreError::Corrupt {
                what: "revision basis",
            }
        })?))
    }

    /// Keeps the new report durably, tells the app, and sends the verify request.
    fn begin_flow(
        &mut self,
        now: UnixTime,
        code: &UploadCode,
        contents: ReportContents,
        revises: Option<Vec<u8>>,
    ) -> Result<(), ClientError> {
        let hmac_key = ReportHmacKey::generate(&mut self.rng);
        let hmac = hmac_key.authenticate(&contents);
        self.report = Some(ReportFlow {
            stage: Stage::Verify {
                code: code.reveal(),
            },
            attempts: 0,
            next_attempt: now.0,
            revises,
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
                self.store.set_meta(MetaKey::PendingReport, &bytes)?;
            }
            None => self.store.remove_meta(MetaKey::PendingReport)?,
        }
        Ok(())
    }

    /// Sends the report's current step, sealed to the node, if it is due and not already
    /// in flight. Without the node's sealing key it starts a sync round (which brings it)
    /// and waits, with the retry backoff.
    pub(super) fn drive_report(&mut self, now: UnixTime) -> Result<(), ClientError> {
        let Some(flow) = self.report.as_ref() else {
            return Ok(());
        };
        if self.report_in_flight || flow.next_attempt > now.0 {
            return Ok(());
        }
        let attempts = flow.attempts;
        let Some(key) = self.sealing_key_or_sync(now) else {
            // Sent as soon as the sync round brings the key; should it fail, the backoff
            // holds the next try (no event: nothing was sent).
            self.flows_await_key = true;
            let delay = self.retry_delay(attempts + 1);
            if let Some(flow) = self.report.as_mut() {
                flow.next_attempt = now.0 + delay;
            }
            return Ok(());
        };
        let flow = self.report.as_ref().expect("checked above");
        let (route, inner) = match &flow.stage {
            Stage::Verify { code } => {
                let code = UploadCode::parse(code).map_err(|_| StoreError::Corrupt {
                    what: "pending report code",
                })?;
                (
                    SealedRoute::Verify,
                    Zeroizing::new(VerifyRequest::real(&code, &flow.hmac).to_padded_json()),
                )
            }
            Stage::Upload { body } => (SealedRoute::Upload, Zeroizing::new(body.clone())),
        };
        // Sealed afresh at every send: a proxy cannot link a retry to its first attempt.
        let Some((body, opener)) = self.seal(key, route, &inner) else {
            return self.report_retry_later(now);
        };
        let pending = match route {
            SealedRoute::Verify => Pending::Verify(opener),
            SealedRoute::Upload => Pending::Upload(opener),
        };
        if let Some(flow) = self.report.as_mut() {
            flow.attempts += 1;
        }
        self.report_in_flight = true;
        self.save_report()?;
        self.push_sealed(pending, route, body);
        Ok(())
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
        flow.next_attempt = now.0 + delay;
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
        flow.next_attempt = flow.next_attempt.min(now.0);
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

    fn report_contents(
        &mut self,
        now: UnixTime,
        first_day: DayNumber,
    ) -> Result<ReportContents, ClientError> {
        match self.config.scheme {
            SchemeKind::Gaen => Ok(ReportContents::Gaen(self.gaen_report_keys(now, first_day)?)),
            SchemeKind::Pet => {
                let mut tokens = Vec::new();
                self.store.for_each_encounter(&mut |r| {
                    if let Evidence::Pet { own, .. } = r.evidence
                        && r.day() >= first_day
                    {
                        tokens.push(PublishedToken {
                            day: r.day(),
                            token: own,
                        });
                    }
                })?;
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

    pub(super) fn on_verify_response(
        &mut self,
        now: UnixTime,
        opener: &ResponseOpener,
        response: &Response,
    ) -> Result<(), ClientError> {
        self.report_in_flight = false;
        let response = &self.unseal(opener, response);
        let Some(flow) = self.report.as_ref() else {
            return Ok(());
        };
        if definitive(response.status).is_none() {
            return self.report_retry_later(now);
        }
        if response.status != 200 {
            // Every verify is followed by an upload, as every decoy's is: a refused code
            // (a typo, an expired code) sends a decoy upload of this report's size.
            let size = upload_size_of(&flow.contents, &mut self.rng);
            self.start_decoy_upload(now, size)?;
            self.report_failed(ReportError::Refused {
                status: response.status,
                code: error_code(&response.body),
            })?;
            return self.drive_decoy(now);
        }
        let certificate = serde_json::from_slice::<VerifyResponse>(&response.body)
            .ok()
            .and_then(|r| r.certificate().ok())
            .filter(|c| c.certificate.report_hmac == flow.hmac);
        let Some(certificate) = certificate else {
            return self.report_failed(ReportError::BadCertificate);
        };
        let upload = SignedUpload {
            contents: flow.contents.clone(),
            certificate,
            hmac_key: flow.hmac_key.clone(),
        };
        let request = match &flow.revises {
            None => UploadRequest::real(upload),
            Some(token) => revision_request(upload, token.clone()),
        };
        let flow = self.report.as_mut().expect("checked above");
        flow.stage = Stage::Upload {
            body: wire::encode(&request),
        };
        flow.attempts = 0;
        flow.next_attempt = now.0;
        // The certificate is kept before the upload is sent: the code is spent now.
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
            let reason = if code == "certificate-expired" {
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
        let basis = RevisionBasis {
            revision_token: decode_hex(&revision_token).unwrap_or_default(),
            contents: flow.contents.clone(),
        };
        let bytes = Zeroizing::new(postcard::to_allocvec(&basis).expect("postcard into a Vec"));
        self.store.set_meta(MetaKey::Revision, &bytes)?;
        self.save_report()?;
        self.push_event(PhoneEvent::ReportUploaded { revision_token })?;
        self.store.flush()?;
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
        Ok(upload_size_of(&contents, &mut self.rng))
    }
}

/// The encoded length of a first upload of `contents`: built with a stand-in certificate
/// of the real shape, so decoys get the bucket the real upload would get.
fn upload_size_of(contents: &ReportContents, rng: &mut impl rand_core::CryptoRng) -> usize {
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
    wire::encode(&UploadRequest::real(SignedUpload {
        contents: contents.clone(),
        certificate,
        hmac_key,
    }))
    .len()
}

/// `Some(status)` when an answer with `status` is definitive; `None` when the request may
/// succeed if sent again (a 5xx, a 429, or a 408).
pub(super) fn definitive(status: u16) -> Option<u16> {
    match status {
        408 | 429 | 500..=599 => None,
        _ => Some(status),
    }
}

/// A revision upload request, padded to its size bucket like a first upload
/// (`proto` pads only first uploads and decoys itself).
fn revision_request(upload: SignedUpload, revision_token: Vec<u8>) -> UploadRequest {
    let mut request = UploadRequest {
        body: UploadBody::Revision {
            upload,
            revision_token,
        },
        padding: Vec::new(),
    };
    let base = wire::encode(&request).len();
    let target = padded_request_size(base);
    // The padding's length prefix is a LEB128 varint; the empty padding counted 1 byte.
    for extra in 0..5usize {
        let Some(len) = (target - base).checked_sub(extra) else {
            break;
        };
        let varint_len = (usize::BITS - len.max(1).leading_zeros()).div_ceil(7) as usize;
        if varint_len == extra + 1 {
            request.padding = vec![0; len];
            break;
        }
    }
    request
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

    use super::{decode_hex, revision_request};

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

    #[test]
    fn revision_requests_are_padded_to_their_bucket() {
        use ephemera_proto::upload::padded_request_size;
        use ephemera_proto::wire;
        // The padding reaches the bucket of the unpadded request exactly.
        for len in [0usize, 1, 100, 5000] {
            let request = revision_request_for_test(len);
            let encoded = wire::encode(&request);
            let target = padded_request_size(encoded.len() - request.padding.len());
            assert!(
                encoded.len() == target || encoded.len() == target + 1,
                "{len}"
            );
        }
    }

    fn revision_request_for_test(token_len: usize) -> ephemera_proto::upload::UploadRequest {
        use ephemera_proto::auth::{AuthoritySigningKey, CertificateRequest, ReportHmacKey};
        use ephemera_proto::upload::SignedUpload;
        use ephemera_proto::{PublishedToken, ReportContents, ReportType, UnixTime};
        use rand_chacha::ChaCha20Rng;
        use rand_core::SeedableRng;
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let authority = AuthoritySigningKey::generate(&mut rng);
        let now = UnixTime(1_700_000_000);
        let contents = ReportContents::Pet(vec![PublishedToken {
            day: now.day(),
            token: ephemera_proto::pet::EncounterToken([7; 16]),
        }]);
        let hmac_key = ReportHmacKey::generate(&mut rng);
        let certificate = authority.issue(
            &CertificateRequest {
                report_hmac: hmac_key.authenticate(&contents),
                test_type: ReportType::ConfirmedTest,
                symptom_onset: None,
            },
            now,
            3600,
            &mut rng,
        );
        revision_request(
            SignedUpload {
                contents,
                certificate,
                hmac_key,
            },
            vec![1; token_len],
        )
    }
}
