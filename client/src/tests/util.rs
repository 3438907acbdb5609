//! Test utilities: a fake node and authority, and [`PhonePair`], two phones in range of
//! each other stepped by a fake clock.

use ephemera_proto::api::{VerifyRequest, VerifyResponse};
use ephemera_proto::auth::{
    AuthoritySigningKey, CertificateRequest, ExpiryPolicy, TrustedAuthorities, UploadCode,
};
use ephemera_proto::batch::{BatchContents, BatchIndex, NodeSigningKey, SignedBatch};
use ephemera_proto::sealed::{SealedRoute, SealingSecretKey};
use ephemera_proto::upload::{UploadBody, UploadRequest};
use ephemera_proto::{
    DayNumber, ReportContents, ReportLimits, ReportType, SchemeKind, UnixTime, wire,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::store::MemoryStore;
use crate::{ClientConfig, Phone, PhoneEvent, Purpose, Request, Response, Sighting, Signal};

/// 2023-11-14T22:13:20Z; tests start a few intervals after it.
pub(crate) const T0: UnixTime = UnixTime(1_700_000_000);

/// An authority and a node in one, in process: certifies codes, verifies uploads, signs
/// batches.
pub(crate) struct FakeNode {
    pub(crate) authority: AuthoritySigningKey,
    pub(crate) node: NodeSigningKey,
    pub(crate) sealing: SealingSecretKey,
    pub(crate) rng: ChaCha20Rng,
    pub(crate) sequence: u64,
}

impl FakeNode {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        FakeNode {
            authority: AuthoritySigningKey::generate(&mut rng),
            node: NodeSigningKey::generate(&mut rng),
            sealing: SealingSecretKey::generate(&mut rng),
            rng,
            sequence: 0,
        }
    }

    /// A config trusting this node.
    pub(crate) fn config(&self, scheme: SchemeKind) -> ClientConfig {
        ClientConfig::new(scheme)
            .with_trusted_node(self.node.public_key())
            .with_decoy_rate(0.0)
    }

    pub(crate) fn code(&mut self) -> UploadCode {
        UploadCode::generate(&mut self.rng)
    }

    /// The answer to `GET /v1/sealing-key`.
    pub(crate) fn sealing_key_answer(&self) -> Response {
        let announcement = self.node.announce_sealing_key(&self.sealing.public_key());
        Response {
            status: 200,
            body: serde_json::to_vec(&announcement).unwrap(),
        }
    }

    /// Gives `phone` this node's sealing key by a sync round with an empty index, as an
    /// app's sync at opening does. Events of the round are drained.
    pub(crate) fn sync_key(&self, now: UnixTime, phone: &mut Phone<MemoryStore>) {
        phone.start_sync(now).unwrap();
        while let Some(r) = phone.poll_request() {
            let answer = self
                .sync_answer(r.purpose)
                .unwrap_or_else(|| panic!("unexpected {:?} during a sync", r.purpose));
            phone.handle_response(now, r.id, answer).unwrap();
        }
        while phone.poll_event().is_some() {}
    }

    /// This node's answer to a sync round's request for `purpose` (an empty index, the
    /// sealing key, an empty venue release index); `None` for other purposes.
    pub(crate) fn sync_answer(&self, purpose: Purpose) -> Option<Response> {
        Some(match purpose {
            Purpose::FetchSealingKey => self.sealing_key_answer(),
            Purpose::FetchIndex => Response {
                status: 200,
                body: serde_json::to_vec(&BatchIndex {
                    batches: vec![],
                    next_cursor: 0,
                    key_rollovers: Vec::new(),
                    head: None,
                    token_filters: false,
                    sunset: None,
                })
                .unwrap(),
            },
            Purpose::FetchVenueReleaseIndex => Response {
                status: 200,
                body: br#"{"releases":[],"next_cursor":0}"#.to_vec(),
            },
            _ => return None,
        })
    }

    /// The inner body of a sealed request.
    pub(crate) fn open(&self, request: &Request) -> Vec<u8> {
        self.sealing
            .open_request(route_of(request), &request.body)
            .expect("a request sealed to this node")
            .0
            .to_vec()
    }

    /// The sealed answer `status` with `body` to `request`.
    pub(crate) fn sealed_answer(
        &mut self,
        request: &Request,
        status: u16,
        body: &[u8],
    ) -> Response {
        let (_, sealer) = self
            .sealing
            .open_request(route_of(request), &request.body)
            .unwrap();
        Response {
            status: 200,
            body: sealer.seal(status, body, &mut self.rng).unwrap(),
        }
    }

    /// The sealed `200` a node answers an upload with.
    pub(crate) fn upload_ok(&mut self, request: &Request) -> Response {
        let ok = ephemera_proto::api::UploadResponse {
            revision_token: "00".into(),
            padding: String::new(),
        };
        self.sealed_answer(request, 200, &ok.to_padded_json())
    }

    /// Answers a verify request like the authority.
    pub(crate) fn answer_verify(&mut self, now: UnixTime, request: &Request) -> Response {
        assert_eq!(request.path, "/v1/verify");
        let body: VerifyRequest = serde_json::from_slice(&self.open(request)).unwrap();
        let certificate = self.authority.issue(
            &CertificateRequest {
                report_hmac: body.parsed_hmac().unwrap(),
                test_type: ReportType::ConfirmedTest,
                symptom_onset: None,
            },
            now,
            3600,
            &mut self.rng,
        );
        self.sealed_answer(
            request,
            200,
            &VerifyResponse::new(&certificate).to_padded_json(),
        )
    }

    /// The upload request inside a sealed `/v1/uploads` request.
    pub(crate) fn upload_request(&self, request: &Request) -> UploadRequest {
        assert_eq!(request.path, "/v1/uploads");
        wire::decode(&self.open(request)).unwrap()
    }

    /// Verifies a (version 2) first upload like a node and returns its contents.
    pub(crate) fn accept_upload(&mut self, now: UnixTime, request: &Request) -> ReportContents {
        let UploadBody::Real {
            upload,
            revision_key,
        } = self.upload_request(request).body
        else {
            panic!("not a real upload")
        };
        let trusted = TrustedAuthorities::new().with(self.authority.public_key());
        upload
            .verify_bound(
                ephemera_proto::revision::Binding::Upload(revision_key),
                &trusted,
                now,
                ExpiryPolicy::FirstUpload,
                &ReportLimits::default(),
            )
            .unwrap()
            .contents()
            .clone()
    }

    /// A signed batch of `contents`, padded with decoys.
    pub(crate) fn batch(&mut self, now: UnixTime, contents: &[ReportContents]) -> SignedBatch {
        self.sequence += 1;
        let mut batch = BatchContents {
            sequence: self.sequence,
            created_at: now,
            ..Default::default()
        };
        for c in contents {
            match c {
                ReportContents::Gaen(keys) => batch.diagnosis_keys.extend(keys.iter().cloned()),
                ReportContents::Pet(tokens) => batch.tokens.extend(tokens.iter().copied()),
            }
        }
        batch.pad_with_decoys(200, now, 14, &mut self.rng);
        batch.sign(&self.node)
    }

    /// Runs `phone`'s whole report flow against this fake; returns what was published.
    pub(crate) fn report(
        &mut self,
        now: UnixTime,
        phone: &mut Phone<MemoryStore>,
        onset: Option<DayNumber>,
    ) -> ReportContents {
        self.try_report(now, phone, onset).unwrap()
    }

    /// As [`FakeNode::report`], or the phone's refusal to start the report.
    pub(crate) fn try_report(
        &mut self,
        now: UnixTime,
        phone: &mut Phone<MemoryStore>,
        onset: Option<DayNumber>,
    ) -> Result<ReportContents, crate::ClientError> {
        let code = self.code();
        self.sync_key(now, phone);
        phone.start_report(now, &code, onset, None)?;
        let verify = phone.poll_request().expect("verify request");
        assert_eq!(verify.purpose, Purpose::Verify);
        let answer = self.answer_verify(now, &verify);
        phone.handle_response(now, verify.id, answer).unwrap();
        let upload = next_upload(phone, now);
        assert_eq!(upload.purpose, Purpose::Upload);
        let contents = self.accept_upload(now, &upload);
        let ok = self.upload_ok(&upload);
        phone.handle_response(now, upload.id, ok).unwrap();
        assert!(matches!(
            phone.poll_event(),
            Some(PhoneEvent::ReportUploaded { .. })
        ));
        Ok(contents)
    }
}

/// Opens the sled store in `dir` again after a phone on it was dropped. sled releases its
/// folder lock when its background flusher lets go of the database, a moment after the
/// last handle is dropped: a busy machine (CI) can still see it held.
pub(crate) fn reopen(dir: &std::path::Path) -> crate::store::SledStore {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match crate::store::SledStore::open(dir) {
            Err(crate::error::StoreError::InUse) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
}

/// The upload that follows a verify's answer at `now`, 1 to 3 s later (the phone's timer).
pub(crate) fn next_upload<S: crate::store::Store>(phone: &mut Phone<S>, now: UnixTime) -> Request {
    for later in 0..=3 {
        phone.handle_timeout(now.plus_seconds(later)).unwrap();
        if let Some(r) = phone.poll_request() {
            return r;
        }
    }
    panic!("no upload within 3 s of the verify's answer")
}

/// The next request that is not for the sealing key or the venue release index (those
/// stay unanswered): what the batch step of a sync round asks for.
pub(crate) fn next_past_key<S: crate::store::Store>(phone: &mut Phone<S>) -> Request {
    loop {
        let r = phone.poll_request().expect("a request");
        if !matches!(
            r.purpose,
            Purpose::FetchSealingKey | Purpose::FetchVenueReleaseIndex
        ) {
            return r;
        }
    }
}

/// The sealed route of a verify or upload request.
fn route_of(request: &Request) -> SealedRoute {
    match request.path.as_str() {
        "/v1/verify" => SealedRoute::Verify,
        "/v1/uploads" => SealedRoute::Upload,
        "/v2/verify" => SealedRoute::TokenVerify,
        other => panic!("{other} is not sealed"),
    }
}

/// `phone` hears `peer`'s whole advertisement of `now` with `signal`.
pub(crate) fn hear<S: crate::store::Store>(
    phone: &mut Phone<S>,
    peer: &mut Phone<MemoryStore>,
    now: UnixTime,
    signal: Signal,
) {
    let ad = peer.advertisement(now).unwrap();
    phone
        .handle_sighting(
            now,
            &Sighting {
                payload: &ad.full,
                signal,
            },
        )
        .unwrap();
}

/// The seconds credited to every encounter kept in `store`.
pub(crate) fn credited_seconds(store: &impl crate::store::Store) -> u64 {
    let mut total = 0u64;
    store
        .for_each_encounter(&mut |r| total += u64::from(r.signal.total_seconds()))
        .unwrap();
    total
}

/// How advertisements travel between the two phones.
#[derive(Copy, Clone, Debug, PartialEq)]
pub(crate) enum Air {
    /// Whole payloads (extended advertising, GATT; GAEN's 20 bytes).
    Full,
    /// Legacy `pet` slices, each lost with this probability.
    LossySlices(f64),
}

/// Two phones in range of each other, stepped by a fake clock: every step each phone's
/// advertisement is fed to the other as a sighting.
pub(crate) struct PhonePair {
    pub(crate) a: Phone<MemoryStore>,
    pub(crate) b: Phone<MemoryStore>,
    pub(crate) now: UnixTime,
    pub(crate) air: Air,
    pub(crate) rssi: i8,
    loss: ChaCha20Rng,
}

impl PhonePair {
    pub(crate) fn new(config: ClientConfig, start: UnixTime, air: Air) -> Self {
        PhonePair {
            a: Phone::new(config.clone(), MemoryStore::new(), [0xa; 32]).unwrap(),
            b: Phone::new(config, MemoryStore::new(), [0xb; 32]).unwrap(),
            now: start,
            air,
            rssi: -60,
            loss: ChaCha20Rng::seed_from_u64(99),
        }
    }

    fn deliver(
        from: &mut Phone<MemoryStore>,
        to: &mut Phone<MemoryStore>,
        now: UnixTime,
        air: Air,
        rssi: i8,
        loss: &mut ChaCha20Rng,
    ) {
        let ad = from.advertisement(now).unwrap();
        let payload = match air {
            Air::Full => ad.full,
            Air::LossySlices(p) => {
                let draw = (loss.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                if draw < p {
                    return;
                }
                ad.legacy
            }
        };
        let signal = Signal::Rssi {
            rssi,
            tx_power: None,
        };
        to.handle_sighting(
            now,
            &Sighting {
                payload: &payload,
                signal,
            },
        )
        .unwrap();
    }

    /// Keeps the phones together for `seconds`, one exchange every `every` seconds.
    pub(crate) fn together(&mut self, seconds: u64, every: u64) {
        let end = self.now.plus_seconds(seconds);
        while self.now <= end {
            let now = self.now;
            Self::deliver(
                &mut self.a,
                &mut self.b,
                now,
                self.air,
                self.rssi,
                &mut self.loss,
            );
            Self::deliver(
                &mut self.b,
                &mut self.a,
                now,
                self.air,
                self.rssi,
                &mut self.loss,
            );
            self.a.handle_timeout(now).unwrap();
            self.b.handle_timeout(now).unwrap();
            self.drain();
            self.now = now.plus_seconds(every);
        }
    }

    /// Moves the clock on by `seconds` with the phones apart, firing their timers.
    pub(crate) fn apart(&mut self, seconds: u64) {
        let end = self.now.plus_seconds(seconds);
        while self.now < end {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(end)
                .min(end)
                .max(self.now.plus_seconds(1));
            self.now = next;
            self.a.handle_timeout(next).unwrap();
            self.b.handle_timeout(next).unwrap();
            self.drain();
        }
    }

    /// Drops requests and events the test does not look at (sync, decoys).
    fn drain(&mut self) {
        for phone in [&mut self.a, &mut self.b] {
            while let Some(r) = phone.poll_request() {
                let _ = phone.handle_failure(self.now, r.id);
            }
        }
    }
}

/// The `pet` key ratchet `store` keeps, if any.
pub(crate) fn stored_ratchet(
    store: &impl crate::store::Store,
) -> Option<ephemera_proto::pet::KeyRatchet> {
    let bytes = store.meta(crate::store::MetaKey::PetRatchet).unwrap()?;
    let bytes: [u8; ephemera_proto::pet::RATCHET_BYTES] = bytes
        .as_slice()
        .try_into()
        .expect("a stored ratchet is 36 bytes");
    Some(ephemera_proto::pet::KeyRatchet::from_bytes(&bytes))
}
