//! A health authority and its node, in process: the real node core
//! ([`ephemera_node_core::NodeCore`]) over an in-memory store, in simulated time. Every
//! rule (codes, certificates, verification, single use, the GAEN embargo, batch cutting,
//! padding, signing, retention, the federation intake) is the core's; this module only
//! moves the phones' requests and the peers' gossip frames to it.

use ephemera_client::{Method, Purpose, Request, Response};
use ephemera_node_core::authority::CodeGrant;
use ephemera_node_core::federation_intake::{RelayAdmission, RelayOutcome};
use ephemera_node_core::intake::{Admission, Settled};
use ephemera_node_core::store::{MemoryReportStore, ReportStore};
use ephemera_node_core::{NodeCore, NodeKeys, Policy};
use ephemera_proto::api::{ErrorBody, UploadResponse, VerifyRequest};
use ephemera_proto::auth::{ExpiryPolicy, UploadCode};
use ephemera_proto::batch::{BatchId, BatchIndex, BatchIndexEntry};
use ephemera_proto::federated::{self, FederatedReport};
use ephemera_proto::revision::Binding;
use ephemera_proto::sealed::SealedRoute;
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::upload::UploadId;
use ephemera_proto::{DayNumber, ReportContents, ReportType, SchemeKind, UnixTime};
use rand_chacha::ChaCha20Rng;
use std::collections::HashMap;
use std::sync::Mutex;

use super::error::SimError;
use super::rng::{Domain, crypto_rng};

/// Batches listed per index page (the node lists up to 1,000; the simulated one 100).
pub const INDEX_PAGE: usize = 100;

/// One accepted upload, with the simulator's knowledge of whose it was (never used by the
/// phones or the attack, only to score them).
#[derive(Clone, Debug)]
pub struct UploadRecord {
    /// The uploading agent.
    pub agent: u32,
    /// When.
    pub at: UnixTime,
    /// First day of the reported window.
    pub first_day: DayNumber,
    /// What was published.
    pub contents: ReportContents,
}

/// One published batch.
#[derive(Clone, Debug)]
pub struct Published {
    /// Its index entry.
    pub entry: BatchIndexEntry,
    /// Its signed bytes.
    pub bytes: Vec<u8>,
    /// Its signed token filter (publication version 3), for a batch with tokens: what the
    /// `pet` phones fetch.
    pub filter: Option<Vec<u8>>,
}

/// An authority and its node.
pub struct Server {
    core: NodeCore,
    store: MemoryReportStore,
    rng: ChaCha20Rng,
    /// Draws the work of decoy requests, answered in the parallel phase.
    decoy_rng: Mutex<ChaCha20Rng>,
    /// Published batches, as the node's batch cache holds them (read by the phones in
    /// parallel without touching the store).
    batches: Vec<Published>,
    by_id: HashMap<BatchId, usize>,
    /// Phones' uploads accepted since federation last took them (to gossip).
    accepted: Vec<UploadId>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("core", &self.core)
            .field("batches", &self.batches.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Node `node`'s authority and node, with keys drawn from `seed`, publishing `scheme`
    /// every `batch_period_seconds`, each section padded to `min_entries`, and trusting the
    /// certificates of the `peers`' authorities (their relayed uploads).
    pub fn new(
        seed: u64,
        node: u32,
        peers: Vec<Ed25519PublicKey>,
        scheme: SchemeKind,
        batch_period_seconds: u64,
        min_entries: usize,
    ) -> Server {
        let mut rng = node_rng(seed, node, 0);
        let keys = NodeKeys::generate(&mut rng);
        let policy = Policy {
            accept_schemes: vec![scheme],
            batch_period_seconds,
            batch_min_entries: min_entries,
            trusted_authorities: peers,
            ..Policy::default()
        };
        let core = NodeCore::new(policy, keys, &mut rng);
        Server {
            core,
            store: MemoryReportStore::new(),
            decoy_rng: Mutex::new(node_rng(seed, node, 1)),
            rng,
            batches: Vec::new(),
            by_id: HashMap::new(),
            accepted: Vec::new(),
        }
    }

    /// The authority key node `node` of a run with `seed` certifies with (what its peers
    /// trust), without building the node.
    pub fn authority_key(seed: u64, node: u32) -> Ed25519PublicKey {
        NodeKeys::generate(&mut node_rng(seed, node, 0))
            .authority
            .public_key()
    }

    /// The key phones trust for batches.
    pub fn node_key(&self) -> Ed25519PublicKey {
        self.core.keys().batch.public_key()
    }

    /// A case worker issues a one-time code for a positive test (stored only as a hash).
    ///
    /// # Errors
    /// [`SimError::Node`] when the core refuses the grant (an onset out of range).
    pub fn issue_code(
        &mut self,
        now: UnixTime,
        onset: Option<DayNumber>,
    ) -> Result<UploadCode, SimError> {
        let grant = CodeGrant {
            test_type: ReportType::ConfirmedTest,
            symptom_onset: onset,
            issued_by_key: None,
        };
        let mut issued = self
            .core
            .issue_codes(&self.store, grant, 1, now, &mut self.rng)
            .map_err(|e| SimError::Node(e.to_string()))?;
        Ok(issued.codes.remove(0))
    }

    /// Cuts the boundary due at `now` (if any) and purges what retention ends.
    ///
    /// # Errors
    /// [`SimError::Node`] if the core cannot cut (a store or export failure).
    pub fn cut_due(&mut self, now: UnixTime) -> Result<(), SimError> {
        let node_error = |e: &dyn std::fmt::Display| SimError::Node(e.to_string());
        if let Some(cut) = self
            .core
            .plan_cut(&self.store, now)
            .map_err(|e| node_error(&e))?
        {
            self.store
                .commit_cut(&cut.commit)
                .map_err(|e| node_error(&e))?;
            for batch in cut.commit.batches {
                let filter = self
                    .core
                    .token_filter(&batch.bytes)
                    .map_err(|e| node_error(&e))?;
                self.by_id.insert(batch.entry.id, self.batches.len());
                self.batches.push(Published {
                    entry: batch.entry,
                    bytes: batch.bytes,
                    filter,
                });
            }
        }
        self.core
            .purge(&self.store, now)
            .map_err(|e| node_error(&e))?;
        Ok(())
    }

    /// The phones' uploads accepted since the last call, for federation to gossip.
    pub fn take_accepted(&mut self) -> Vec<UploadId> {
        std::mem::take(&mut self.accepted)
    }

    /// The gossip frame of stored upload `id` (`proto::federated`, with the binding kept
    /// in its certificate's mark), as the node's federation serves it; `None` once purged.
    ///
    /// # Errors
    /// [`SimError::Node`] for a store failure.
    pub fn relay_frame(&self, id: &UploadId) -> Result<Option<Vec<u8>>, SimError> {
        let node_error = |e: &dyn std::fmt::Display| SimError::Node(e.to_string());
        let Some(record) = self.store.upload(id).map_err(|e| node_error(&e))? else {
            return Ok(None);
        };
        let binding = self
            .store
            .certificate_use(&record.upload.certificate.certificate.id)
            .map_err(|e| node_error(&e))?
            .filter(|mark| mark.upload == *id)
            .map_or(Binding::Unbound, |mark| mark.binding);
        Ok(Some(federated::encode(&FederatedReport {
            upload: record.upload,
            binding,
        })))
    }

    /// Takes a peer's gossip frame through what a node does with it: decoded, verified as a
    /// relayed report under this node's trusted authorities, admitted by the core's
    /// federation intake and committed. Returns the upload's id when it is newly stored
    /// here (to forward on), `None` when it was stored before.
    ///
    /// # Errors
    /// [`SimError::Node`] for a frame an honest peer would not send (it does not decode
    /// or verify, or its certificate was used by another upload) or a store failure.
    pub fn take_relayed(
        &mut self,
        frame: &[u8],
        now: UnixTime,
    ) -> Result<Option<UploadId>, SimError> {
        let node_error = |e: &dyn std::fmt::Display| SimError::Node(e.to_string());
        let report = federated::decode(frame).map_err(|e| node_error(&e))?;
        let limits = self.core.limits();
        let policy = ExpiryPolicy::Relayed {
            retention_days: limits.retention_days,
        };
        let upload = report
            .upload
            .verify_bound(report.binding, self.core.trusted(), now, policy, limits)
            .map_err(|e| node_error(&e))?;
        let id = upload.id();
        let commit = match self
            .core
            .admit_relayed(&self.store, upload, now)
            .map_err(|e| node_error(&e))?
        {
            RelayAdmission::AlreadyStored => return Ok(None),
            RelayAdmission::Commit(commit) => commit,
            refused => return Err(SimError::Node(format!("relay refused: {refused:?}"))),
        };
        let outcome = self
            .store
            .commit_upload(&commit)
            .map_err(|e| node_error(&e))?;
        match self
            .core
            .settle_relayed(&self.store, &id, outcome)
            .map_err(|e| node_error(&e))?
        {
            RelayOutcome::Stored => Ok(Some(id)),
            RelayOutcome::AlreadyStored => Ok(None),
            refused => Err(SimError::Node(format!("relay refused: {refused:?}"))),
        }
    }

    /// Every batch published so far.
    pub fn batches(&self) -> &[Published] {
        &self.batches
    }

    fn index_after(&self, cursor: u64) -> Response {
        let start = self.batches.partition_point(|p| p.entry.sequence <= cursor);
        let page: Vec<BatchIndexEntry> = self.batches[start..]
            .iter()
            .take(INDEX_PAGE)
            .map(|p| p.entry.clone())
            .collect();
        let next_cursor = page.last().map_or(cursor, |e| e.sequence);
        let index = BatchIndex {
            batches: page,
            next_cursor,
            key_rollovers: Vec::new(),
            head: None,
            token_filters: true,
            sunset: None,
        };
        ok(serde_json::to_vec(&index).expect("index serialises"))
    }

    /// Answers a request that changes no state the phones can observe: the batch index, a
    /// batch, or a decoy (which the core handles as it would on a node). Real verify and
    /// upload requests need [`Server::serve_mut`].
    ///
    /// # Errors
    /// [`SimError::Node`] for a real verify or upload (they must go through `serve_mut`).
    pub fn serve(&self, now: UnixTime, request: &Request) -> Result<Response, SimError> {
        match (request.method, request.purpose) {
            (Method::Get, _) => {
                let path = request.path.as_str();
                if path == "/v1/sealing-key" {
                    let keys = self.core.keys();
                    let announcement = keys.batch.announce_sealing_key(&keys.sealing.public_key());
                    return Ok(ok(serde_json::to_vec(&announcement).expect("plain JSON")));
                }
                if let Some(cursor) = path.strip_prefix("/v1/batches?after=") {
                    return Ok(self.index_after(cursor.parse().unwrap_or(0)));
                }
                if let Some(id) = path.strip_prefix("/v1/batches/") {
                    let (id, filter) = match id.strip_suffix("/filter") {
                        Some(id) => (id, true),
                        None => (id, false),
                    };
                    let found = BatchId::from_hex(id)
                        .and_then(|id| self.by_id.get(&id))
                        .map(|i| &self.batches[*i]);
                    return Ok(match (found, filter) {
                        (Some(batch), false) => ok(batch.bytes.clone()),
                        (
                            Some(Published {
                                filter: Some(f), ..
                            }),
                            true,
                        ) => ok(f.clone()),
                        _ => error(404, "not-found"),
                    });
                }
                Ok(error(404, "not-found"))
            }
            (Method::Post, Purpose::DecoyVerify) => Ok(self
                .sealed(SealedRoute::Verify, request, |inner| {
                    (self.verify(now, inner), None::<()>)
                })
                .0),
            (Method::Post, Purpose::DecoyUpload) => Ok(self
                .sealed(SealedRoute::Upload, request, |inner| {
                    self.upload(now, inner)
                })
                .0),
            (Method::Post, _) => Err(SimError::Node(format!(
                "{} needs the serial phase",
                request.path
            ))),
        }
    }

    /// Answers any request, including real verify and upload requests (which change the
    /// authority's and node's state). Returns the accepted contents of a real upload.
    pub fn serve_mut(
        &mut self,
        now: UnixTime,
        request: &Request,
    ) -> (Response, Option<ReportContents>) {
        let (response, accepted) = match (request.method, request.path.as_str()) {
            (Method::Post, "/v1/verify") => self.sealed(SealedRoute::Verify, request, |inner| {
                (self.verify(now, inner), None)
            }),
            (Method::Post, "/v1/uploads") => self.sealed(SealedRoute::Upload, request, |inner| {
                self.upload(now, inner)
            }),
            _ => (
                self.serve(now, request)
                    .unwrap_or_else(|_| error(404, "not-found")),
                None,
            ),
        };
        let contents = accepted.map(|(id, contents)| {
            self.accepted.push(id);
            contents
        });
        (response, contents)
    }

    /// Opens a sealed phone request (`proto::sealed`), answers its inner body with
    /// `handle`, and seals the answer back, as the node does.
    fn sealed<T>(
        &self,
        route: SealedRoute,
        request: &Request,
        handle: impl FnOnce(&[u8]) -> (Response, Option<T>),
    ) -> (Response, Option<T>) {
        let Ok((inner, sealer)) = self.core.keys().sealing.open_request(route, &request.body)
        else {
            return (error(400, "unreadable-sealed-body"), None);
        };
        let (answer, accepted) = handle(&inner);
        let mut rng = self.decoy_rng.lock().unwrap_or_else(|e| e.into_inner());
        match sealer.seal(answer.status, &answer.body, &mut *rng) {
            Ok(body) => (ok(body), accepted),
            Err(_) => (error(500, "internal-error"), None),
        }
    }

    /// `POST /v1/verify`: the core takes the code and certifies the HMAC.
    fn verify(&self, now: UnixTime, body: &[u8]) -> Response {
        let Ok(request) = serde_json::from_slice::<VerifyRequest>(body) else {
            return error(400, "malformed-json");
        };
        let mut rng = self.decoy_rng.lock().unwrap_or_else(|e| e.into_inner());
        match self.core.redeem_code(&self.store, &request, now, &mut *rng) {
            Ok(response) => ok(response.to_padded_json()),
            Err(e) => refused(&e),
        }
    }

    /// `POST /v1/uploads`: the core verifies and plans it; the in-memory store applies it
    /// (durable at once). Returns the id and contents of an accepted real upload.
    fn upload(&self, now: UnixTime, body: &[u8]) -> (Response, Option<(UploadId, ReportContents)>) {
        let store: &dyn ReportStore = &self.store;
        let admitted = self
            .core
            .decode_upload(body)
            .and_then(|request| self.core.admit_upload(store, request, now, false));
        let planned = match admitted {
            Ok(Admission::Commit(planned)) => planned,
            // Answered as a real upload of its frame's version is: a random token for a
            // version 1 decoy, none for version 2 (docs/PROTOCOL.md §5.4).
            Ok(Admission::Decoy) if body.first() == Some(&ephemera_proto::wire::WIRE_VERSION) => {
                let mut token = [0u8; 32];
                rand_core::Rng::fill_bytes(
                    &mut *self.decoy_rng.lock().unwrap_or_else(|e| e.into_inner()),
                    &mut token,
                );
                return (upload_answer(Some(token)), None);
            }
            Ok(Admission::Decoy) => return (upload_answer(None), None),
            Ok(Admission::Replayed(token)) => return (upload_answer(token), None),
            Err(e) => return (refused(&e), None),
        };
        let settled = store
            .commit_upload(&planned.commit)
            .map_err(ephemera_node_core::IntakeError::from)
            .and_then(|outcome| self.core.settle_upload(store, &planned.receipt, outcome));
        match settled {
            Ok(Settled::Accepted(token)) => (
                upload_answer(token),
                Some((
                    planned.commit.upload.0,
                    planned.commit.upload.1.upload.contents.clone(),
                )),
            ),
            Ok(Settled::Replayed(token)) => (upload_answer(token), None),
            Err(e) => (refused(&e), None),
        }
    }
}

/// Node `node`'s random stream `use_` (0: keys and codes, 1: decoy work). Node 0 draws
/// what the single node of a run without federation always drew.
fn node_rng(seed: u64, node: u32, use_: u64) -> ChaCha20Rng {
    match node {
        0 => crypto_rng(seed, Domain::Authority, &[use_][..usize::from(use_ != 0)]),
        _ => crypto_rng(seed, Domain::FederatedNode, &[u64::from(node), use_]),
    }
}

fn ok(body: Vec<u8>) -> Response {
    Response { status: 200, body }
}

fn upload_answer(token: Option<[u8; 32]>) -> Response {
    let answer = UploadResponse {
        revision_token: token.map(hex::encode).unwrap_or_default(),
        padding: String::new(),
    };
    ok(answer.to_padded_json())
}

/// A refusal by the core. The phones only tell success from failure, so every refusal is
/// a 400 carrying the core's own message (the node's HTTP layer maps each to its status).
fn refused(e: &dyn std::fmt::Display) -> Response {
    let body = ErrorBody {
        error: "refused".to_owned(),
        message: e.to_string(),
    };
    Response {
        status: 400,
        body: serde_json::to_vec(&body).expect("plain JSON"),
    }
}

fn error(status: u16, code: &str) -> Response {
    let body = ErrorBody {
        error: code.to_owned(),
        message: code.to_owned(),
    };
    Response {
        status,
        body: serde_json::to_vec(&body).expect("plain JSON"),
    }
}
