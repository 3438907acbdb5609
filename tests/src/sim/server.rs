//! The health authority and one node, in process: codes, certificates, verified uploads and
//! signed, padded batches, answering the phones' requests as the HTTP API would.
//!
//! Only proto's checked paths are used: [`AuthoritySigningKey::issue`] for certificates,
//! [`SignedUpload::verify`] plus single use of each certificate for uploads, and
//! [`BatchContents::sign`] for batches.

use std::collections::{HashMap, HashSet};

use ephemera_client::{Method, Purpose, Request, Response};
use ephemera_proto::api::{UploadResponse, VerifyRequest, VerifyResponse};
use ephemera_proto::auth::{
    AuthoritySigningKey, CertificateRequest, CodePepper, ExpiryPolicy, TrustedAuthorities,
    UploadCode,
};
use ephemera_proto::batch::{
    BatchContents, BatchId, BatchIndex, BatchIndexEntry, NodeSigningKey, SignedBatch,
};
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::upload::{UploadBody, UploadRequest};
use ephemera_proto::{DayNumber, ReportContents, ReportLimits, ReportType, UnixTime, wire};
use rand_chacha::ChaCha20Rng;

use super::error::SimError;
use super::rng::{Domain, crypto_rng};

/// Seconds a certificate is valid for its first upload.
const CERTIFICATE_LIFETIME: u64 = 3600;
/// Batches listed per index page.
const INDEX_PAGE: usize = 100;

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
}

/// The authority and the node.
#[derive(Debug)]
pub struct Server {
    authority: AuthoritySigningKey,
    trusted: TrustedAuthorities,
    node: NodeSigningKey,
    pepper: CodePepper,
    rng: ChaCha20Rng,
    codes: HashMap<[u8; 32], Option<DayNumber>>,
    used_certificates: HashSet<[u8; 16]>,
    pending: BatchContents,
    batches: Vec<Published>,
    by_id: HashMap<BatchId, usize>,
    min_entries: usize,
    retention_days: u32,
    limits: ReportLimits,
    decoy_verify: Vec<u8>,
    decoy_upload: Vec<u8>,
    /// Every accepted upload.
    pub uploads: Vec<UploadRecord>,
    /// Decoy requests answered.
    pub decoys: u64,
}

impl Server {
    /// A fresh authority and node with keys drawn from `seed`.
    pub fn new(seed: u64, min_entries: usize) -> Server {
        let mut rng = crypto_rng(seed, Domain::Authority, &[]);
        let authority = AuthoritySigningKey::generate(&mut rng);
        let node = NodeSigningKey::generate(&mut rng);
        let pepper = CodePepper::generate(&mut rng);
        let trusted = TrustedAuthorities::new().with(authority.public_key());
        let decoy_verify = VerifyResponse::decoy(120, &mut rng).to_padded_json();
        let decoy_upload = UploadResponse {
            revision_token: "00".repeat(16),
            padding: String::new(),
        }
        .to_padded_json();
        Server {
            authority,
            trusted,
            node,
            pepper,
            rng,
            codes: HashMap::new(),
            used_certificates: HashSet::new(),
            pending: BatchContents::default(),
            batches: Vec::new(),
            by_id: HashMap::new(),
            min_entries,
            retention_days: 14,
            limits: ReportLimits::default(),
            decoy_verify,
            decoy_upload,
            uploads: Vec::new(),
            decoys: 0,
        }
    }

    /// The key phones trust for batches.
    pub fn node_key(&self) -> Ed25519PublicKey {
        self.node.public_key()
    }

    /// A case worker issues a one-time code for a positive test (stored only as a hash).
    pub fn issue_code(&mut self, onset: Option<DayNumber>) -> UploadCode {
        let code = UploadCode::generate(&mut self.rng);
        self.codes.insert(code.hash(&self.pepper).0, onset);
        code
    }

    /// `POST /v1/verify`: marks the code used and certifies the HMAC.
    fn verify(&mut self, now: UnixTime, body: &[u8]) -> Response {
        let Ok(request) = serde_json::from_slice::<VerifyRequest>(body) else {
            return error(400, "malformed");
        };
        if request.decoy {
            self.decoys += 1;
            return ok(self.decoy_verify.clone());
        }
        let (Ok(code), Some(hmac)) = (UploadCode::parse(&request.code), request.parsed_hmac())
        else {
            return error(400, "malformed");
        };
        let Some(onset) = self.codes.remove(&code.hash(&self.pepper).0) else {
            return error(403, "code-invalid");
        };
        let certificate = self.authority.issue(
            &CertificateRequest {
                report_hmac: hmac,
                test_type: ReportType::ConfirmedTest,
                symptom_onset: onset,
            },
            now,
            CERTIFICATE_LIFETIME,
            &mut self.rng,
        );
        ok(VerifyResponse::new(&certificate).to_padded_json())
    }

    /// `POST /v1/uploads`: verifies and queues a real upload for the next batch.
    fn upload(&mut self, now: UnixTime, body: &[u8]) -> (Response, Option<ReportContents>) {
        let Ok(request) = wire::decode::<UploadRequest>(body) else {
            return (error(400, "malformed"), None);
        };
        let upload = match request.body {
            UploadBody::Real(upload) => upload,
            UploadBody::Decoy => {
                self.decoys += 1;
                return (ok(self.decoy_upload.clone()), None);
            }
            UploadBody::Revision { .. } => return (error(400, "revision-unsupported"), None),
        };
        let verified =
            match upload.verify(&self.trusted, now, ExpiryPolicy::FirstUpload, &self.limits) {
                Ok(v) => v,
                Err(_) => return (error(403, "upload-refused"), None),
            };
        let id = verified.upload().certificate.certificate.id.0;
        if !self.used_certificates.insert(id) {
            return (error(409, "certificate-used"), None);
        }
        let contents = verified.contents().clone();
        match &contents {
            ReportContents::Gaen(keys) => self.pending.diagnosis_keys.extend(keys.iter().cloned()),
            ReportContents::Pet(tokens) => self.pending.tokens.extend(tokens.iter().copied()),
        }
        (ok(self.decoy_upload.clone()), Some(contents))
    }

    /// Cuts and signs the batch of everything accepted since the last one, padded with
    /// decoys to the minimum size.
    pub fn cut_batch(&mut self, now: UnixTime) {
        let mut contents = std::mem::take(&mut self.pending);
        contents.sequence = self.batches.len() as u64 + 1;
        contents.created_at = now;
        contents.pad_with_decoys(self.min_entries, now, self.retention_days, &mut self.rng);
        let (keys, tokens) = (contents.diagnosis_keys.len(), contents.tokens.len());
        let sequence = contents.sequence;
        let signed: SignedBatch = contents.sign(&self.node);
        let entry = BatchIndexEntry {
            id: signed.id(),
            sequence,
            created_at: now,
            size: signed.bytes().len() as u64,
            keys: keys as u32,
            tokens: tokens as u32,
        };
        self.by_id.insert(entry.id, self.batches.len());
        self.batches.push(Published {
            entry,
            bytes: signed.into_bytes(),
        });
    }

    /// Every batch published so far.
    pub fn batches(&self) -> &[Published] {
        &self.batches
    }

    fn index_after(&self, cursor: u64) -> Response {
        let start = (cursor as usize).min(self.batches.len());
        let page: Vec<BatchIndexEntry> = self.batches[start..]
            .iter()
            .take(INDEX_PAGE)
            .map(|p| p.entry.clone())
            .collect();
        let next_cursor = page.last().map_or(cursor, |e| e.sequence);
        let index = BatchIndex {
            batches: page,
            next_cursor,
        };
        ok(serde_json::to_vec(&index).expect("index serialises"))
    }

    /// Answers a request that changes nothing: the batch index, a batch, or a decoy. Real
    /// verify and upload requests need [`Server::serve_mut`].
    ///
    /// # Errors
    /// [`SimError::Node`] for a real verify or upload (they must go through `serve_mut`).
    pub fn serve(&self, request: &Request) -> Result<Response, SimError> {
        match (request.method, request.purpose) {
            (Method::Get, _) => {
                let path = request.path.as_str();
                if let Some(cursor) = path.strip_prefix("/v1/batches?after=") {
                    return Ok(self.index_after(cursor.parse().unwrap_or(0)));
                }
                if let Some(id) = path.strip_prefix("/v1/batches/") {
                    let found = BatchId::from_hex(id).and_then(|id| self.by_id.get(&id));
                    return Ok(match found {
                        Some(i) => ok(self.batches[*i].bytes.clone()),
                        None => error(404, "not-found"),
                    });
                }
                Ok(error(404, "not-found"))
            }
            (Method::Post, Purpose::DecoyVerify) => Ok(ok(self.decoy_verify.clone())),
            (Method::Post, Purpose::DecoyUpload) => Ok(ok(self.decoy_upload.clone())),
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
        match (request.method, request.path.as_str()) {
            (Method::Post, "/v1/verify") => (self.verify(now, &request.body), None),
            (Method::Post, "/v1/uploads") => self.upload(now, &request.body),
            _ => (
                self.serve(request)
                    .unwrap_or_else(|_| error(404, "not-found")),
                None,
            ),
        }
    }
}

fn ok(body: Vec<u8>) -> Response {
    Response { status: 200, body }
}

fn error(status: u16, code: &str) -> Response {
    let body = serde_json::json!({ "error": code, "message": code }).to_string();
    Response {
        status,
        body: body.into_bytes(),
    }
}
