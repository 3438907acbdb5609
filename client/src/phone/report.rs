//! Reporting: build the report, get it certified, upload it; and the decoys that hide it.

use ephemera_proto::api::{ErrorBody, UploadResponse, VerifyRequest, VerifyResponse};
use ephemera_proto::auth::{ReportHmac, ReportHmacKey, UploadCode};
use ephemera_proto::upload::{SignedUpload, UploadRequest};
use ephemera_proto::wire;
use ephemera_proto::{DayNumber, PublishedToken, ReportContents, SchemeKind, UnixTime};

use super::{Pending, Phone};
use crate::error::{ClientError, ReportError};
use crate::request::{CONTENT_TYPE_JSON, CONTENT_TYPE_OCTETS, Method, PhoneEvent, Response};
use crate::store::{Evidence, Store};

/// Bytes a report costs beyond its entries (certificate, HMAC key, framing): used to size
/// decoys like real uploads.
const REPORT_OVERHEAD: usize = 400;
/// Encoded bytes of one `gaen` diagnosis key or one `pet` token, roughly.
const ENTRY_SIZE: usize = 24;

/// A report on its way.
#[derive(Debug)]
pub(super) struct ReportFlow {
    contents: ReportContents,
    hmac_key: ReportHmacKey,
    hmac: ReportHmac,
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
        self.tick(now)?;
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
        let hmac_key = ReportHmacKey::generate(&mut self.rng);
        let hmac = hmac_key.authenticate(&contents);
        let body = VerifyRequest::real(code, &hmac).to_padded_json();
        self.push_request(
            Pending::Verify,
            Method::Post,
            "/v1/verify".to_owned(),
            Some(CONTENT_TYPE_JSON),
            body,
        );
        if matches!(contents, ReportContents::Gaen(_)) {
            // Today's key went into the report cut at `now`: never broadcast it again.
            self.release_todays_key(now)?;
        }
        let preview = ReportPreview {
            scheme: contents.scheme(),
            first_day,
            entries: contents.len(),
        };
        self.report = Some(ReportFlow {
            contents,
            hmac_key,
            hmac,
        });
        Ok(preview)
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
        _now: UnixTime,
        response: &Response,
    ) -> Result<(), ClientError> {
        let Some(flow) = self.report.take() else {
            return Ok(());
        };
        if response.status != 200 {
            self.events
                .push_back(PhoneEvent::ReportFailed(ReportError::Refused {
                    status: response.status,
                    code: error_code(&response.body),
                }));
            return Ok(());
        }
        let certificate = serde_json::from_slice::<VerifyResponse>(&response.body)
            .ok()
            .and_then(|r| r.certificate().ok())
            .filter(|c| c.certificate.report_hmac == flow.hmac);
        let Some(certificate) = certificate else {
            self.events
                .push_back(PhoneEvent::ReportFailed(ReportError::BadCertificate));
            return Ok(());
        };
        let upload = SignedUpload {
            contents: flow.contents.clone(),
            certificate,
            hmac_key: flow.hmac_key.clone(),
        };
        let body = wire::encode(&UploadRequest::real(upload));
        self.push_request(
            Pending::Upload,
            Method::Post,
            "/v1/uploads".to_owned(),
            Some(CONTENT_TYPE_OCTETS),
            body,
        );
        self.report = Some(flow);
        Ok(())
    }

    pub(super) fn on_upload_response(&mut self, response: &Response) {
        self.report = None;
        if response.status != 200 {
            self.events
                .push_back(PhoneEvent::ReportFailed(ReportError::UploadRefused {
                    status: response.status,
                    code: error_code(&response.body),
                }));
            return;
        }
        let revision_token = serde_json::from_slice::<UploadResponse>(&response.body)
            .map(|r| r.revision_token)
            .unwrap_or_default();
        self.events
            .push_back(PhoneEvent::ReportUploaded { revision_token });
    }

    /// Whether a report is on its way.
    pub fn report_in_progress(&self) -> bool {
        self.report.is_some()
    }

    /// Queues a decoy verify request (same path, size and content type as a real one).
    pub(super) fn send_decoy_verify(&mut self) {
        self.push_request(
            Pending::DecoyVerify,
            Method::Post,
            "/v1/verify".to_owned(),
            Some(CONTENT_TYPE_JSON),
            VerifyRequest::decoy().to_padded_json(),
        );
    }

    /// Queues the decoy upload that follows a decoy verify, sized like this phone's real
    /// report would be now.
    pub(super) fn send_decoy_upload(&mut self) -> Result<(), ClientError> {
        let entries = match self.config.scheme {
            SchemeKind::Gaen => self.config.report.days_before_test as usize + 1,
            SchemeKind::Pet => {
                let mut n = 0usize;
                self.store.for_each_encounter(&mut |r| {
                    if matches!(r.evidence, Evidence::Pet { .. }) {
                        n += 1;
                    }
                })?;
                n
            }
        };
        let typical = REPORT_OVERHEAD + entries * ENTRY_SIZE;
        let body = wire::encode(&UploadRequest::decoy_like(typical, &mut self.rng));
        self.push_request(
            Pending::DecoyUpload,
            Method::Post,
            "/v1/uploads".to_owned(),
            Some(CONTENT_TYPE_OCTETS),
            body,
        );
        Ok(())
    }
}

/// The kebab-case code of an API error body, or empty.
fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|e| e.error)
        .unwrap_or_default()
}
