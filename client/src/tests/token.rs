//! Reports with blind upload tokens (`docs/PROTOCOL.md` §4.4) against a fake node that
//! holds token keys: the token verify, the upload after its drawn delay (across a restart,
//! never earlier), the revision, the certificate flow kept where the node has no keys, a
//! stale key set, and decoys shaped like real token verifies.

use ephemera_proto::api::ErrorBody;
use ephemera_proto::auth::UploadCode;
use ephemera_proto::revision::{Binding, HmacBinding};
use ephemera_proto::token::{
    Audience, SignedTokenKeySet, TOKEN_VERIFY_REQUEST_SIZE, TokenClass, TokenKeys, TokenSigningKey,
    TokenVerifyRequest, TokenVerifyResponse, UploadDelay,
};
use ephemera_proto::upload::UploadBody;
use ephemera_proto::{DayNumber, SchemeKind, UnixTime, wire};

use super::util::{FakeNode, T0};
use crate::store::MemoryStore;
use crate::{ClientConfig, Phone, PhoneEvent, Purpose, Request, Response};

const FEDERATION: &str = "north";

/// A few intervals into a day after [`T0`].
fn start() -> UnixTime {
    T0.day().plus(1).first_interval().plus(40).start()
}

/// Two token keys of `day` (confirmed and likely, no onset). Every test reports on
/// [`start`]'s day: those are made once (RSA key generation is slow) and read back.
fn signing_keys(day: DayNumber) -> Vec<TokenSigningKey> {
    use rand_core::SeedableRng;
    static MADE: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    assert_eq!(day, start().day());
    let classes = [TokenClass::ALL[0], TokenClass::ALL[3]];
    let ders = MADE.get_or_init(|| {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(u64::from(day.0));
        classes
            .iter()
            .map(|class| {
                let key = TokenSigningKey::generate(&mut rng, day, *class).unwrap();
                key.to_der().unwrap().to_vec()
            })
            .collect()
    });
    ders.iter()
        .zip(classes)
        .map(|(der, class)| TokenSigningKey::from_der(day, class, der).unwrap())
        .collect()
}

/// The fake node with token keys of one day.
struct TokenNode {
    node: FakeNode,
    keys: Vec<TokenSigningKey>,
}

impl TokenNode {
    fn new(seed: u64, day: DayNumber) -> Self {
        TokenNode {
            node: FakeNode::new(seed),
            keys: signing_keys(day),
        }
    }

    fn config(&self) -> ClientConfig {
        self.node
            .config(SchemeKind::Pet)
            .with_trusted_authority(self.node.authority.public_key())
            .with_federation(FEDERATION)
            .with_upload_delay(UploadDelay::Uniform { max_seconds: 3600 })
    }

    fn verifiers(&self) -> TokenKeys {
        let mut keys = TokenKeys::default();
        for key in &self.keys {
            keys.insert(key.public().parse().unwrap()).unwrap();
        }
        keys
    }

    /// The answer to `GET /v2/token-keys`: this node's keys, or none.
    fn key_set_answer(&self, with_keys: bool) -> Response {
        let keys: &[TokenSigningKey] = if with_keys { &self.keys } else { &[] };
        let set = SignedTokenKeySet::publish(
            &self.node.authority,
            Audience::named(FEDERATION),
            start(),
            keys,
        );
        Response {
            status: 200,
            body: wire::encode(&set),
        }
    }

    /// A sync round at `now`: an empty index, the sealing key and the token keys.
    fn sync(&self, now: UnixTime, phone: &mut Phone<MemoryStore>, with_keys: bool) {
        phone.start_sync(now).unwrap();
        self.answer_sync_requests(now, phone, with_keys);
    }

    fn answer_sync_requests(&self, now: UnixTime, phone: &mut Phone<MemoryStore>, keys: bool) {
        while let Some(r) = phone.poll_request() {
            self.answer_sync_request(now, phone, r, keys);
        }
    }

    /// Answers a token verify as the authority does for a code of `class_index`'s class.
    fn answer_token_verify(&mut self, request: &Request, class_index: usize) -> Response {
        assert_eq!(request.path, "/v2/verify");
        let inner = self.node.open(request);
        assert_eq!(inner.len(), TOKEN_VERIFY_REQUEST_SIZE);
        let body: TokenVerifyRequest = serde_json::from_slice(&inner).unwrap();
        assert!(!body.decoy);
        let entries = body.entries().unwrap();
        assert_eq!(entries.len(), self.keys.len(), "one blinded message a key");
        let signer = &self.keys[class_index];
        let (_, message) = entries
            .iter()
            .find(|(id, _)| *id == signer.public().id())
            .unwrap();
        let signature = signer.blind_sign(message, &mut self.node.rng).unwrap();
        let answer = TokenVerifyResponse::new(signer.public().id(), &signature);
        self.node
            .sealed_answer(request, 200, &answer.to_padded_json())
    }
}

/// Steps `phone` `step` seconds at a time from `from` until it sends a request for
/// `purpose`, up to `until` (answering its syncs); returns it with the time it came.
fn first_request_after(
    node: &TokenNode,
    phone: &mut Phone<MemoryStore>,
    (from, until, step): (UnixTime, UnixTime, u64),
    purpose: Purpose,
) -> Option<(UnixTime, Request)> {
    let mut now = from;
    while now <= until {
        phone.handle_timeout(now).unwrap();
        while let Some(r) = phone.poll_request() {
            if r.purpose == purpose {
                return Some((now, r));
            }
            node.answer_sync_request(now, phone, r, true);
        }
        now = now.plus_seconds(step);
    }
    None
}

/// Whether `phone` has an upload to send now.
fn sends_upload(phone: &mut Phone<MemoryStore>) -> bool {
    std::iter::from_fn(|| phone.poll_request()).any(|r| r.purpose == Purpose::Upload)
}

/// A phone with a few encounters to report.
fn phone_with_encounters(config: ClientConfig, seed: u8) -> Phone<MemoryStore> {
    let mut phone = Phone::new(config.clone(), MemoryStore::new(), [seed; 32]).unwrap();
    let mut peer = Phone::new(config, MemoryStore::new(), [seed + 1; 32]).unwrap();
    // Fifteen minutes together, well before the report.
    let mut now = UnixTime(start().0 - 3 * 3600);
    for _ in 0..90 {
        super::util::hear(
            &mut phone,
            &mut peer,
            now,
            crate::Signal::Rssi {
                rssi: -55,
                tx_power: Some(-8),
            },
        );
        now = now.plus_seconds(10);
    }
    phone.handle_timeout(now.plus_seconds(600)).unwrap();
    while phone.poll_request().is_some() {}
    while phone.poll_event().is_some() {}
    phone
}

fn uploaded(phone: &mut Phone<MemoryStore>) -> bool {
    std::iter::from_fn(|| phone.poll_event())
        .any(|e| matches!(e, PhoneEvent::ReportUploaded { .. }))
}

#[test]
fn a_token_report_uploads_after_its_drawn_delay_even_across_a_restart_and_can_be_revised() {
    let now = start();
    let mut node = TokenNode::new(41, now.day());
    let config = node.config();
    let mut phone = phone_with_encounters(config.clone(), 60);
    node.sync(now, &mut phone, true);
    let code: UploadCode = node.node.code();
    phone.start_report(now, &code, None, None).unwrap();
    let verify = phone.poll_request().expect("a token verify");
    assert_eq!(verify.purpose, Purpose::Verify);
    let answer = node.answer_token_verify(&verify, 0);
    phone.handle_response(now, verify.id, answer).unwrap();
    // The token is in hand; the upload waits for its drawn time, even when the user taps
    // "retry" or the app restarts.
    assert!(phone.status().report_certified);
    phone.retry_report(now.plus_seconds(1)).unwrap();
    assert!(!sends_upload(&mut phone), "no upload before its time");
    let mut phone = Phone::new(config.clone(), phone.into_store(), [61; 32]).unwrap();
    node.sync(now.plus_seconds(2), &mut phone, true);
    phone.retry_report(now.plus_seconds(3)).unwrap();
    assert!(!sends_upload(&mut phone), "no upload before its time");
    let window = (now.plus_seconds(60), now.plus_seconds(3700), 60);
    let (sent_at, upload) = first_request_after(&node, &mut phone, window, Purpose::Upload)
        .expect("the upload within the delay");
    assert_eq!(upload.purpose, Purpose::Upload);
    assert!(sent_at.0 > now.0 + 60, "not at once: {}", sent_at.0 - now.0);
    let UploadBody::Tokened {
        upload: first,
        revision_key,
    } = node.node.upload_request(&upload).body
    else {
        panic!("a token upload")
    };
    // The node certifies it under the token's id, for this federation.
    let audience = Audience::named(FEDERATION);
    let keys = node.verifiers();
    first
        .clone()
        .certify(
            &keys,
            &audience,
            HmacBinding::Upload(revision_key),
            &node.node.authority,
            sent_at,
        )
        .unwrap();
    let ok = node.node.upload_ok(&upload);
    phone.handle_response(sent_at, upload.id, ok).unwrap();
    assert!(uploaded(&mut phone));
    assert!(!phone.report_in_progress());
    assert!(phone.can_revise());

    // likely → confirmed: a new code, a new token, the same keys, signed with the secret.
    let later = sent_at.plus_seconds(600);
    let code = node.node.code();
    phone.start_revision(later, &code).unwrap();
    let verify = phone.poll_request().expect("the revision's verify");
    let answer = node.answer_token_verify(&verify, 0);
    phone.handle_response(later, verify.id, answer).unwrap();
    let window = (later, later.plus_seconds(3700), 60);
    let (at, upload) = first_request_after(&node, &mut phone, window, Purpose::Upload)
        .expect("the revision's upload");
    let UploadBody::TokenRevision {
        upload: revision,
        revises,
        signature,
    } = node.node.upload_request(&upload).body
    else {
        panic!("a token revision")
    };
    assert_eq!(revises, first.certificate_id(), "it names the first upload");
    assert_eq!(revision.contents, first.contents);
    let certified = revision
        .certify(
            &keys,
            &audience,
            HmacBinding::Revision(revision_key),
            &node.node.authority,
            at,
        )
        .unwrap();
    let binding = Binding::TokenRevision {
        key: revision_key,
        revises,
        signature,
    };
    assert!(binding.signature_holds(&certified.certificate));
    let ok = node.node.upload_ok(&upload);
    phone.handle_response(at, upload.id, ok).unwrap();
    assert!(uploaded(&mut phone));
}

#[test]
fn a_node_without_token_keys_keeps_the_certificate_flow() {
    let now = start();
    let mut node = TokenNode::new(42, now.day());
    let mut phone = phone_with_encounters(node.config(), 70);
    node.sync(now, &mut phone, false);
    let code = node.node.code();
    phone.start_report(now, &code, None, None).unwrap();
    let verify = phone.poll_request().expect("a verify");
    assert_eq!(verify.path, "/v1/verify");
    let answer = node.node.answer_verify(now, &verify);
    phone.handle_response(now, verify.id, answer).unwrap();
    let window = (now, now.plus_seconds(3), 1);
    let (_, upload) = first_request_after(&node, &mut phone, window, Purpose::Upload)
        .expect("the upload 1–3 s later");
    assert!(matches!(
        node.node.upload_request(&upload).body,
        UploadBody::Real { .. }
    ));
}

#[test]
fn a_verify_waits_for_the_token_keys_and_a_stale_set_is_fetched_again() {
    let now = start();
    let mut node = TokenNode::new(43, now.day());
    let mut phone = phone_with_encounters(node.config(), 80);
    let code = node.node.code();
    // No keys yet: the report starts a sync round and waits for it.
    phone.start_report(now, &code, None, None).unwrap();
    let window = (now, now, 1);
    let (_, verify) = first_request_after(&node, &mut phone, window, Purpose::Verify)
        .expect("the verify once the keys came");
    assert_eq!(verify.path, "/v2/verify");
    // The node made new keys since: nothing is spent, the phone fetches them again.
    let stale = ErrorBody {
        error: "stale-token-keys".into(),
        message: "fetch the keys again".into(),
    };
    let answer = node
        .node
        .sealed_answer(&verify, 409, &serde_json::to_vec(&stale).unwrap());
    phone.handle_response(now, verify.id, answer).unwrap();
    assert!(
        !std::iter::from_fn(|| phone.poll_event())
            .any(|e| matches!(e, PhoneEvent::ReportFailed(_))),
        "a stale key set fails nothing"
    );
    let window = (now, now, 1);
    let (_, refetch) = first_request_after(&node, &mut phone, window, Purpose::FetchTokenKeys)
        .expect("the keys again");
    phone
        .handle_response(now, refetch.id, node.key_set_answer(true))
        .unwrap();
    let window = (now, now.plus_seconds(3600), 60);
    let (at, verify) = first_request_after(&node, &mut phone, window, Purpose::Verify)
        .expect("the verify sent again, blinded under the new keys");
    let answer = node.answer_token_verify(&verify, 1);
    phone.handle_response(at, verify.id, answer).unwrap();
    let window = (at, at.plus_seconds(3700), 60);
    let (_, upload) =
        first_request_after(&node, &mut phone, window, Purpose::Upload).expect("the upload");
    assert!(matches!(
        node.node.upload_request(&upload).body,
        UploadBody::Tokened { .. }
    ));
}

#[test]
fn a_decoy_token_verify_is_sealed_to_the_size_of_a_real_one_and_its_upload_waits_too() {
    let now = start();
    let mut node = TokenNode::new(44, now.day());
    let config = node.config().with_decoy_rate(48.0);
    let mut phone = phone_with_encounters(config, 90);
    node.sync(now, &mut phone, true);
    let mut t = now;
    let decoy = loop {
        t = phone.poll_timeout().unwrap().max(t.plus_seconds(1));
        assert!(t.0 < now.0 + 86_400, "no decoy flow in a day");
        phone.handle_timeout(t).unwrap();
        let mut found = None;
        while let Some(r) = phone.poll_request() {
            if r.purpose == Purpose::DecoyVerify {
                found = Some(r);
            } else {
                node.answer_sync_request(t, &mut phone, r, true);
            }
        }
        if let Some(r) = found {
            break r;
        }
    };
    assert_eq!(decoy.path, "/v2/verify");
    let inner: TokenVerifyRequest = serde_json::from_slice(&node.node.open(&decoy)).unwrap();
    assert_eq!(inner.blinded.len(), node.keys.len());
    let fake = TokenVerifyResponse::decoy(256, &mut node.node.rng);
    let answer = node.node.sealed_answer(&decoy, 200, &fake.to_padded_json());
    phone.handle_response(t, decoy.id, answer).unwrap();
    // Its upload comes at a drawn time, as a real token upload's does, not 1–3 s later.
    phone.handle_timeout(t.plus_seconds(3)).unwrap();
    assert!(std::iter::from_fn(|| phone.poll_request()).all(|r| r.purpose != Purpose::DecoyUpload));
    // A real token verify of this phone is sealed to the same size.
    let mut real_phone = phone_with_encounters(node.config(), 95);
    node.sync(t, &mut real_phone, true);
    let code = node.node.code();
    real_phone.start_report(t, &code, None, None).unwrap();
    let real = real_phone.poll_request().unwrap();
    assert_eq!(real.path, decoy.path);
    assert_eq!(real.body.len(), decoy.body.len());
    assert_eq!(real.content_type, decoy.content_type);
}

impl TokenNode {
    /// Answers one request of a sync round (with this node's token keys, or none).
    fn answer_sync_request(
        &self,
        now: UnixTime,
        phone: &mut Phone<MemoryStore>,
        r: Request,
        with_keys: bool,
    ) {
        let answer = match r.purpose {
            Purpose::FetchTokenKeys => self.key_set_answer(with_keys),
            other => self
                .node
                .sync_answer(other)
                .unwrap_or_else(|| panic!("unexpected {other:?} during a sync")),
        };
        phone.handle_response(now, r.id, answer).unwrap();
    }
}

#[test]
fn a_blind_signature_that_does_not_unblind_ends_the_report_with_a_decoy_upload_at_the_drawn_time() {
    let now = start();
    let mut node = TokenNode::new(45, now.day());
    let mut phone = phone_with_encounters(node.config(), 100);
    node.sync(now, &mut phone, true);
    let code = node.node.code();
    phone.start_report(now, &code, None, None).unwrap();
    let verify = phone.poll_request().expect("a token verify");
    // A real blind signature, under a key id the phone never blinded under.
    let mut answer: TokenVerifyResponse = {
        let inner: TokenVerifyRequest = serde_json::from_slice(&node.node.open(&verify)).unwrap();
        let entries = inner.entries().unwrap();
        let (_, message) = entries
            .iter()
            .find(|(id, _)| *id == node.keys[1].public().id())
            .unwrap();
        let signature = node.keys[1]
            .blind_sign(message, &mut node.node.rng)
            .unwrap();
        TokenVerifyResponse::new(node.keys[1].public().id(), &signature)
    };
    answer.key = TokenVerifyResponse::decoy(256, &mut node.node.rng).key;
    let sealed = node
        .node
        .sealed_answer(&verify, 200, &answer.to_padded_json());
    phone.handle_response(now, verify.id, sealed).unwrap();
    assert!(std::iter::from_fn(|| phone.poll_event()).any(|e| matches!(
        e,
        PhoneEvent::ReportFailed(crate::ReportError::BadCertificate)
    )));
    assert!(!phone.report_in_progress());
    // The verify is followed by an upload as every verify is: a decoy, at a drawn time.
    phone.handle_timeout(now.plus_seconds(3)).unwrap();
    assert!(std::iter::from_fn(|| phone.poll_request()).all(|r| r.purpose != Purpose::DecoyUpload));
    let window = (now.plus_seconds(60), now.plus_seconds(3700), 60);
    let (_, decoy) = first_request_after(&node, &mut phone, window, Purpose::DecoyUpload)
        .expect("the decoy upload within the delay");
    assert_eq!(decoy.path, "/v1/uploads");
    assert!(matches!(
        node.node.upload_request(&decoy).body,
        UploadBody::Decoy
    ));
}

/// `docs/PROTOCOL.md` §4.4, "Same keys for everyone": a second node's set that names
/// another key for one of today's classes (the authority gave this phone's node a key of
/// its own) stops the phone from blinding under it; once a later check agrees, the report
/// goes on.
#[test]
fn a_key_a_second_node_contradicts_is_never_blinded_under() {
    use rand_core::SeedableRng;
    let now = start();
    let mut node = TokenNode::new(45, now.day());
    let mut phone = phone_with_encounters(node.config(), 90);
    node.sync(now, &mut phone, true);
    // The second node serves the usual key for one class and another for the other.
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(46);
    let own = TokenSigningKey::generate(&mut rng, now.day(), TokenClass::ALL[3]).unwrap();
    let contradicting = SignedTokenKeySet::publish(
        &node.node.authority,
        Audience::named(FEDERATION),
        now,
        [&node.keys[0], &own],
    );
    assert!(matches!(
        phone.cross_check_token_keys(now, &wire::encode(&contradicting)),
        Err(crate::ClientError::TokenKeysMismatch)
    ));
    // The report waits: no verify goes, even after the keys are fetched again.
    let code = node.node.code();
    phone.start_report(now, &code, None, None).unwrap();
    node.answer_sync_requests(now, &mut phone, true);
    phone.retry_report(now.plus_seconds(60)).unwrap();
    let sent: Vec<Request> = std::iter::from_fn(|| phone.poll_request()).collect();
    for request in &sent {
        assert_ne!(
            request.purpose,
            Purpose::Verify,
            "blinded under a contested key"
        );
    }
    assert_eq!(phone.status().last_error, Some("token-keys-mismatch"));
    // A second node that agrees (the node fixed, or the first check was wrong) lets it on.
    for request in sent {
        node.answer_sync_request(now, &mut phone, request, true);
    }
    let agreeing = node.key_set_answer(true).body;
    assert_eq!(
        phone.cross_check_token_keys(now, &agreeing).unwrap(),
        crate::TokenKeysCrossCheck::Consistent { classes: 2 }
    );
    phone.retry_report(now.plus_seconds(120)).unwrap();
    let window = (now.plus_seconds(120), now.plus_seconds(180), 60);
    let (_, verify) = first_request_after(&node, &mut phone, window, Purpose::Verify)
        .expect("the verify once a check agrees");
    assert_eq!(verify.path, "/v2/verify");
}
