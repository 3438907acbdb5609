//! The node's sealing key on the phone, and the sealed verify and upload exchanges
//! (`ephemera_proto::sealed`): a TLS-terminating proxy in front of the node reads neither
//! the code, the report nor the node's answer, real or decoy.
//!
//! The key is fetched at the start of every sync round (beside the batch index), signed
//! by a node key the app trusts for batches; it lives in memory only. A flow that finds no
//! key starts a sync round and waits for it; real and decoy flows alike.

use ephemera_proto::UnixTime;
use ephemera_proto::api::ErrorBody;
use ephemera_proto::sealed::{
    self, ResponseOpener, SealedRoute, SealingKeyAnnouncement, SealingPublicKey,
};

use super::{Pending, Phone};
use crate::error::ClientError;
use crate::request::{Method, Response};
use crate::store::Store;

/// The status a sealed exchange is treated as when its answer is not one the node sealed
/// (a proxy's error page, a garbled body): retried like a 502.
const UNSEALED_ANSWER: u16 = 502;

impl<S: Store> Phone<S> {
    /// Asks for the node's sealing key, unless a request for it is in flight.
    pub(super) fn request_sealing_key(&mut self) {
        self.fetch_once(Pending::FetchSealingKey, "/v1/sealing-key");
    }

    /// Keeps the announced key if a node key this phone trusts signed it (a configured key,
    /// or one it followed through a rollover); flows waiting for a key go on at once.
    pub(super) fn on_sealing_key(
        &mut self,
        now: UnixTime,
        response: &Response,
    ) -> Result<(), ClientError> {
        if response.status != 200 {
            return Ok(());
        }
        let announced = serde_json::from_slice::<SealingKeyAnnouncement>(&response.body)
            .ok()
            .and_then(|a| a.verify(&self.trusted_nodes()).ok());
        let Some(key) = announced else {
            self.last_error = Some("sealing-key");
            return Ok(());
        };
        self.sealing_key = Some(key);
        self.resume_flows_awaiting_key(now)
    }

    /// The node's sealing key, if known; otherwise starts a sync round (which fetches it)
    /// and returns `None`.
    pub(super) fn sealing_key_or_sync(&mut self, now: UnixTime) -> Option<SealingPublicKey> {
        if self.sealing_key.is_none() {
            self.start_sync_round(now);
        }
        self.sealing_key
    }

    /// Queues a sealed `POST` of `body` on `route`.
    pub(super) fn push_sealed(&mut self, pending: Pending, route: SealedRoute, body: Vec<u8>) {
        self.push_request(
            pending,
            Method::Post,
            route.path().to_owned(),
            Some(sealed::CONTENT_TYPE),
            body,
        );
    }

    /// Seals `inner` for `route` to the key held now, if any (no sync is started).
    pub(super) fn seal_now(
        &mut self,
        route: SealedRoute,
        inner: &[u8],
    ) -> Option<(Vec<u8>, ResponseOpener)> {
        let key = self.sealing_key?;
        self.seal(key, route, inner)
    }

    /// Seals `inner` for `route` to `key`.
    pub(super) fn seal(
        &mut self,
        key: SealingPublicKey,
        route: SealedRoute,
        inner: &[u8],
    ) -> Option<(Vec<u8>, ResponseOpener)> {
        match key.seal_request(route, inner, &mut self.rng) {
            Ok(sealed) => Some(sealed),
            Err(_) => {
                // A signed but unusable key: fetch it again at the next sync.
                self.sealing_key = None;
                None
            }
        }
    }

    /// The answer the node sealed inside `response`, as a plain status and body. An answer
    /// that was not sealed by the node (an error before the node opened the request, a
    /// proxy's page) keeps its outer status, or counts as a 502 if it claimed success; a
    /// node that no longer holds the key is asked for the new one.
    pub(super) fn unseal(&mut self, opener: &ResponseOpener, response: &Response) -> Response {
        if response.status != 200 {
            let unknown_key = serde_json::from_slice::<ErrorBody>(&response.body)
                .is_ok_and(|e| e.error == "unknown-sealing-key");
            if unknown_key {
                self.sealing_key = None;
                // Retried once the new key is in.
                return Response {
                    status: UNSEALED_ANSWER,
                    body: Vec::new(),
                };
            }
            return response.clone();
        }
        match opener.open(&response.body) {
            Ok(inner) => Response {
                status: inner.status,
                body: inner.body,
            },
            Err(_) => Response {
                status: UNSEALED_ANSWER,
                body: Vec::new(),
            },
        }
    }
}
