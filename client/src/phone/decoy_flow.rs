//! Decoy flows: what a real report looks like from outside, with nothing inside.
//!
//! A network observer or a TLS-terminating proxy sees, of a real report: a sync when the
//! app opens, a verify some tens of seconds later (the person types the code), an upload
//! right after it, sometimes a second verify and upload (a mistyped code), retries with
//! backoff when the network or the node fails. Sealed bodies (`phone::sealing`) hide the
//! rest. A decoy flow reproduces each of these from the same code paths and distributions:
//!
//! - it starts with a sync round, as an app opening does, and sends its verify after a
//!   delay drawn from `decoy.delay_seconds`;
//! - every verify is followed by an upload 1–3 s later (`report::UPLOAD_DELAY_SECONDS`), sized
//!   as this phone's real report would be now
//!   ([`Phone::real_upload_size`]) — as a real verify that fails is followed by a decoy
//!   upload of its report's size (`phone::report`);
//! - `decoy.retry_fraction` of the flows send a second verify and upload after a drawn delay;
//! - an answer that is not definitive (no network, 408, 429, 5xx) is retried with the
//!   report's backoff ([`Phone::retry_delay`]);
//! - it is kept in the store and flushed where a real report is (started, answered, done),
//!   and its upload is built and sealed when the verify's answer comes, as a real upload
//!   is: a send writes nothing and seals nothing, for either, so the gap between a verify's
//!   answer and the upload says nothing (a decoy sized at send time arrived 2.6 ms later on
//!   average, and a classifier read it through the 1–3 s draw), and a flow cut by the app
//!   being killed resumes after the restart, as a real one does;
//! - when the node has token keys for today (`phone::token_keys`), its verify goes to
//!   `POST /v2/verify` as a real one does, blinding under as many keys of the same
//!   modulus (`TokenVerifyRequest::decoy`: the same padded and sealed size), and its upload
//!   follows at a time drawn from `report.upload_delay`, as a real token upload does;
//! - one phone's flows never interleave: a real report's verify waits for a decoy flow past
//!   its verify to end, and ends one whose verify has not gone
//!   ([`Phone::decoy_holds_report`]).

use ephemera_proto::UnixTime;
use ephemera_proto::api::VerifyRequest;
use ephemera_proto::sealed::{ResponseOpener, SealedRoute};
use ephemera_proto::token::TokenVerifyRequest;
use ephemera_proto::upload::UploadRequest;
use ephemera_proto::wire;
use rand_core::Rng;
use serde::{Deserialize, Serialize};

use super::token_keys::VerifyRoute;
use super::{Pending, Phone};
use crate::error::{ClientError, StoreError};
use crate::request::Response;
use crate::store::{MetaKey, Store};

/// The step a decoy flow sends next.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum DecoyStage {
    Verify,
    Upload,
    /// The upload after a token verify, due at a time drawn from `report.upload_delay`
    /// (sealed when sent, as a real token upload is).
    TokenUpload,
}

/// A decoy flow on its way (kept in the store, meta [`MetaKey::PendingDecoy`]).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DecoyFlow {
    stage: DecoyStage,
    /// Sends of the current stage so far.
    attempts: u32,
    /// When the next send is due.
    next_attempt: UnixTime,
    /// Verify-and-upload pairs still to send after the current one.
    retries_left: u8,
    #[serde(skip)]
    in_flight: bool,
    /// The upload's length: set when the verify's answer comes (this phone's real report
    /// size then), or at the start for the upload that follows a refused real verify.
    upload_size: Option<usize>,
}

impl DecoyFlow {
    /// The flow kept in `store`, if any.
    pub(super) fn load(store: &impl Store) -> Result<Option<Self>, ClientError> {
        let Some(bytes) = store.meta(MetaKey::PendingDecoy)? else {
            return Ok(None);
        };
        let flow = postcard::from_bytes(&bytes).map_err(|_| StoreError::Corrupt {
            what: "pending decoy",
        })?;
        Ok(Some(flow))
    }

    /// When the next send is due, unless a send is in flight.
    pub(super) fn due(&self) -> Option<UnixTime> {
        (!self.in_flight).then_some(self.next_attempt)
    }

    /// Makes a waiting flow due at `now` at the latest (its key arrived).
    pub(super) fn hurry(&mut self, now: UnixTime) {
        self.next_attempt = self.next_attempt.min(now);
    }
}

impl<S: Store> Phone<S> {
    /// Starts a decoy flow now (the Poisson timer fired), unless one is running or a real
    /// report is on its way (its requests already cover this phone).
    pub(super) fn start_decoy_flow(&mut self, now: UnixTime) -> Result<(), ClientError> {
        if self.decoy.is_some() || self.report.is_some() {
            return Ok(());
        }
        self.start_sync_round(now);
        self.decoy_upload_sealed = None;
        let retries_left = u8::from(self.draw_unit() < self.config.decoy.retry_fraction);
        self.decoy = Some(DecoyFlow {
            stage: DecoyStage::Verify,
            attempts: 0,
            next_attempt: now.plus_seconds(self.draw_decoy_delay()),
            retries_left,
            in_flight: false,
            upload_size: None,
        });
        self.save_decoy()
    }

    /// Whether the decoy flow has sent its verify and its upload is not answered yet: a real
    /// report's verify waits for it. Sent between them, it would show the node one
    /// phone's two verifies before an upload, which no flow produces, and pair the real
    /// verify with the decoy's upload.
    pub(super) fn decoy_holds_report(&self) -> bool {
        self.decoy
            .as_ref()
            .is_some_and(|flow| flow.in_flight || flow.stage == DecoyStage::Upload)
    }

    /// Ends a decoy flow whose next verify has not gone: a real report's verify takes its
    /// place.
    pub(super) fn drop_unsent_decoy(&mut self) -> Result<(), ClientError> {
        // A decoy token upload waiting for its drawn time stays: its verify went, and
        // every verify is followed by an upload.
        if self
            .decoy
            .as_ref()
            .is_none_or(|flow| flow.stage == DecoyStage::TokenUpload)
        {
            return Ok(());
        }
        self.decoy = None;
        self.decoy_upload_sealed = None;
        self.save_decoy()
    }

    /// Keeps the decoy flow durably, as a real report is kept at the same steps.
    fn save_decoy(&mut self) -> Result<(), ClientError> {
        match &self.decoy {
            Some(flow) => {
                let bytes = postcard::to_allocvec(flow).expect("postcard into a Vec");
                self.store.set_meta(MetaKey::PendingDecoy, &bytes)?;
            }
            None => self.store.remove_meta(MetaKey::PendingDecoy)?,
        }
        self.store.flush()?;
        Ok(())
    }

    /// Sends a decoy upload of `size` bytes: what follows a real verify the node refused,
    /// so that every verify is followed by an upload (no decoy flow is on its way then: a
    /// real verify waits for one to end). After a certificate verify it goes 1–3 s later;
    /// after a token verify at `token_due`, the time the real upload would have gone.
    pub(super) fn start_decoy_upload(
        &mut self,
        now: UnixTime,
        size: usize,
        token_due: Option<UnixTime>,
    ) -> Result<(), ClientError> {
        let (stage, next_attempt) = match token_due {
            Some(due) => (DecoyStage::TokenUpload, due),
            None => {
                let delay = self.draw_upload_delay();
                // Built and sealed now, as the real upload it stands for would have been.
                let body = wire::encode(&UploadRequest::decoy(size));
                self.decoy_upload_sealed = self.seal_now(SealedRoute::Upload, &body);
                (DecoyStage::Upload, now.plus_seconds(delay))
            }
        };
        self.decoy = Some(DecoyFlow {
            stage,
            attempts: 0,
            next_attempt,
            retries_left: 0,
            in_flight: false,
            upload_size: Some(size),
        });
        self.save_decoy()
    }

    /// Sends the decoy flow's next step if it is due.
    pub(super) fn drive_decoy(&mut self, now: UnixTime) -> Result<(), ClientError> {
        let Some((stage, upload_size)) = self
            .decoy
            .as_ref()
            .filter(|f| f.due().is_some_and(|t| t <= now))
            .map(|f| (f.stage, f.upload_size))
        else {
            return Ok(());
        };
        let upload_sealed = match stage {
            DecoyStage::Upload => self.decoy_upload_sealed.take(),
            DecoyStage::Verify | DecoyStage::TokenUpload => None,
        };
        let (route, (body, opener)) = match upload_sealed {
            // Sealed when the verify's answer came, as a real upload is.
            Some(sealed) => (SealedRoute::Upload, sealed),
            None => {
                let step = match self.sealing_key_or_sync(now) {
                    Some(key) => self
                        .decoy_step(now, stage, upload_size)?
                        .map(|step| (key, step)),
                    None => None,
                };
                let Some((key, (route, inner))) = step else {
                    // Sent once the sync round brings the key (and the token keys, as a
                    // real verify waits for them); meanwhile the backoff holds.
                    self.flows_await_key = true;
                    let attempts = self.decoy.as_ref().map_or(0, |f| f.attempts);
                    let delay = self.retry_delay(attempts + 1);
                    if let Some(flow) = self.decoy.as_mut() {
                        flow.next_attempt = now.plus_seconds(delay);
                    }
                    return Ok(());
                };
                let Some(sealed) = self.seal(key, route, &inner) else {
                    return Ok(());
                };
                (route, sealed)
            }
        };
        let pending = match route {
            SealedRoute::Verify => Pending::DecoyVerify(opener),
            SealedRoute::TokenVerify => Pending::DecoyTokenVerify(opener),
            SealedRoute::Upload => Pending::DecoyUpload(opener),
        };
        if let Some(flow) = self.decoy.as_mut() {
            flow.attempts += 1;
            flow.in_flight = true;
        }
        self.push_sealed(pending, route, body);
        Ok(())
    }

    /// The decoy step `stage`, unsealed: its route and inner body; `None` while a verify
    /// waits for the token keys, as a real one does.
    fn decoy_step(
        &mut self,
        now: UnixTime,
        stage: DecoyStage,
        upload_size: Option<usize>,
    ) -> Result<Option<(SealedRoute, Vec<u8>)>, ClientError> {
        Ok(Some(match stage {
            DecoyStage::Verify => match self.verify_route(now) {
                VerifyRoute::Wait => return Ok(None),
                VerifyRoute::Certificate => (
                    SealedRoute::Verify,
                    VerifyRequest::decoy(&mut self.rng).to_padded_json(),
                ),
                VerifyRoute::Token(_) => {
                    let (count, modulus) = self
                        .token_verify_shape(now)
                        .expect("a token route has keys for today");
                    let request = TokenVerifyRequest::decoy(count, modulus, &mut self.rng);
                    (SealedRoute::TokenVerify, request.to_padded_json())
                }
            },
            DecoyStage::Upload | DecoyStage::TokenUpload => (
                SealedRoute::Upload,
                wire::encode(&UploadRequest::decoy(match upload_size {
                    Some(size) => size,
                    // A flow kept by a version that sized uploads at send time.
                    None => self.real_upload_size(now)?,
                })),
            ),
        }))
    }

    /// The answer to a decoy step (`token`: to a token verify): on to the next step, done,
    /// or retried as a real step would be.
    pub(super) fn on_decoy_response(
        &mut self,
        now: UnixTime,
        opener: &ResponseOpener,
        response: &Response,
        token: bool,
    ) -> Result<(), ClientError> {
        let inner = self.unseal(opener, response);
        if super::report::definitive(inner.status).is_none() {
            return self.decoy_retry_later(now);
        }
        let delay = self.draw_decoy_delay();
        let upload_delay = self.draw_upload_delay();
        let token_due = token.then(|| {
            self.config
                .report
                .upload_delay
                .upload_at(now, &mut self.rng)
        });
        let size_now = match self.decoy.as_ref() {
            Some(flow) if flow.stage == DecoyStage::Verify && flow.upload_size.is_none() => {
                Some(self.real_upload_size(now)?)
            }
            _ => None,
        };
        let Some(flow) = self.decoy.as_mut() else {
            return Ok(());
        };
        flow.in_flight = false;
        flow.attempts = 0;
        match flow.stage {
            DecoyStage::Verify if let Some(due) = token_due => {
                // As a real token upload: at the drawn time, sealed when sent.
                flow.stage = DecoyStage::TokenUpload;
                flow.upload_size = flow.upload_size.or(size_now);
                flow.next_attempt = due;
            }
            DecoyStage::Verify => {
                // Every verify is followed by an upload, as a real one is; built and
                // sealed now, as a real one is.
                flow.stage = DecoyStage::Upload;
                flow.upload_size = flow.upload_size.or(size_now);
                flow.next_attempt = now.plus_seconds(upload_delay);
                let body = wire::encode(&UploadRequest::decoy(flow.upload_size.unwrap_or(0)));
                self.decoy_upload_sealed = self.seal_now(SealedRoute::Upload, &body);
            }
            DecoyStage::Upload | DecoyStage::TokenUpload if flow.retries_left > 0 => {
                flow.retries_left -= 1;
                flow.stage = DecoyStage::Verify;
                flow.upload_size = None;
                flow.next_attempt = now.plus_seconds(delay);
            }
            DecoyStage::Upload | DecoyStage::TokenUpload => self.decoy = None,
        }
        self.save_decoy()?;
        // A real report waiting for this flow goes on once it ends.
        self.drive_report(now)?;
        self.drive_decoy(now)
    }

    /// No definitive answer (no network, 408, 429, 5xx): the same backoff as a real step.
    pub(super) fn decoy_retry_later(&mut self, now: UnixTime) -> Result<(), ClientError> {
        let Some(attempts) = self.decoy.as_ref().map(|f| f.attempts) else {
            return Ok(());
        };
        let delay = self.retry_delay(attempts);
        if let Some(flow) = self.decoy.as_mut() {
            flow.in_flight = false;
            flow.next_attempt = now.plus_seconds(delay);
        }
        Ok(())
    }

    /// A delay drawn uniformly from `decoy.delay_seconds`.
    fn draw_decoy_delay(&mut self) -> u64 {
        let (low, high) = self.config.decoy.delay_seconds;
        low + self.rng.next_u64() % (high - low + 1)
    }

    /// A uniform draw in [0, 1).
    fn draw_unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
