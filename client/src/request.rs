//! What the phone asks the app to send, and what the app hands back.

use ephemera_proto::batch::BatchId;

use crate::risk::DailyExposure;

/// Names one request so its answer can be handed back.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// HTTP method.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// Why a request is sent. The app needs it only for logging or scheduling; on the wire a
/// decoy is indistinguishable from the real request of the same kind.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// `GET /v1/batches?after=<cursor>`: the batch index.
    FetchIndex,
    /// `GET /v1/batches/{id}`: one signed batch.
    FetchBatch(BatchId),
    /// `GET /v1/batches/{id}/filter`: a batch's token filter, what a `pet` phone fetches
    /// instead of the batch when the node offers it (publication version 3).
    FetchFilter(BatchId),
    /// `GET /v1/sealing-key`: the key verify and upload bodies are sealed to.
    FetchSealingKey,
    /// `POST /v1/verify`: exchange the code and report HMAC for a certificate; or
    /// `POST /v2/verify`: exchange the code and blinded commitments for a blind token.
    Verify,
    /// `POST /v1/uploads`: the report with its certificate.
    Upload,
    /// A decoy verify request.
    DecoyVerify,
    /// A decoy upload.
    DecoyUpload,
    /// `GET /v2/token-keys`: the authority's signed blind-token keys (only with
    /// `report.federation` set).
    FetchTokenKeys,
    /// `GET /v1/venue-releases?after=<cursor>`: the node's index of venue releases
    /// (feature `venue`).
    FetchVenueReleaseIndex,
    /// `GET /v1/venue-releases/{id}`: one signed venue release (feature `venue`).
    FetchVenueRelease(ephemera_proto::venue::ReleaseId),
}

/// Content type of JSON bodies.
pub const CONTENT_TYPE_JSON: &str = "application/json";
/// Content type of postcard frames.
pub const CONTENT_TYPE_OCTETS: &str = "application/octet-stream";

/// One HTTP request for the app (or the `http` transport) to send to the node.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// Hand this back with the answer.
    pub id: RequestId,
    /// Why it is sent.
    pub purpose: Purpose,
    /// HTTP method.
    pub method: Method,
    /// Path and query below the node's base URL, e.g. `/v1/batches?after=3`.
    pub path: String,
    /// Content type of `body`, for POSTs.
    pub content_type: Option<&'static str>,
    /// The body (empty for GETs). Verify and upload bodies are padded by `proto`.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body may hold an upload code: never print it.
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("purpose", &self.purpose)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The answer to a [`Request`].
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Something the app should know about.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PhoneEvent {
    /// Matching found (more) exposure on a day; the summary covers the whole day.
    ExposureFound(DailyExposure),
    /// The report was accepted by the node.
    ReportUploaded {
        /// The node's opaque token for a later revision (hex) of an upload an earlier app
        /// version certified (protocol version 1); empty for a version 2 upload, which the
        /// phone revises with its own kept revision secret (`docs/PROTOCOL.md` §5.4).
        revision_token: String,
    },
    /// The report is kept on the phone and on its way (sent at once, retried until the
    /// node acknowledges it or definitively refuses it).
    ReportPending,
    /// A verify or upload got no definitive answer (no network, a 5xx, a 429): the phone
    /// retries at `next_attempt` (or at once on [`Phone::retry_report`]), across restarts.
    ///
    /// [`Phone::retry_report`]: crate::Phone::retry_report
    ReportRetrying {
        /// Sends of the current step so far.
        attempt: u32,
        /// When the phone sends again.
        next_attempt: ephemera_proto::UnixTime,
    },
    /// The report failed for good (a definitive answer); the reason names the step and
    /// has a stable [`code`](crate::ReportError::code).
    ReportFailed(crate::error::ReportError),
    /// A sync round finished.
    SyncCompleted {
        /// The cursor now stored.
        cursor: u64,
        /// Batches ingested in the round.
        batches: u32,
    },
    /// A batch failed verification and was not used; the next sync retries it.
    BatchRejected(ephemera_proto::error::BatchError),
    /// A valid sunset order for this phone was received: at `effective_at` the phone erases
    /// everything and stops (even if it never connects again). Tell the user, with the
    /// reason.
    SunsetScheduled {
        /// When the phone ends.
        effective_at: ephemera_proto::UnixTime,
        /// Why, in the committee's words.
        reason: String,
    },
    /// The phone has ended (a sunset order took effect, or its end of life came): its data
    /// is erased and every input now fails with
    /// [`ClientError::Ended`](crate::ClientError::Ended). Stop the Bluetooth work and show
    /// the closing screen.
    Ended(crate::EndReason),
    /// Venue traces matched one of the user's check-ins: a case was at a place while the
    /// user was. Show the day, the hours and the authority's message (never where: the
    /// phone does not know it any more).
    VenueWarning(crate::VenueWarning),
    /// The check-in was open for `venue.max_stay_seconds` and the phone checked out by
    /// itself (the visit is kept, encrypted, as at a check-out). Update the screen.
    VenueCheckedOut,
    /// The phone refused its node's venue release index or a release it listed (the code
    /// says why; [`retried`](crate::VenueReleaseError::retried) whether the next sync asks
    /// again or the release was skipped). For logs: nothing to show the user. Not kept.
    VenueReleaseRejected(crate::error::VenueReleaseError),
    /// The node's index carried a sunset order this phone could not verify (forged,
    /// partial, for another federation or committee, post-dated, or no committee
    /// configured): ignored, nothing erased. Not kept: the next sync meets it again.
    SunsetOrderRejected,
}
