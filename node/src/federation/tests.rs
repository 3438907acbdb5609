//! Federation tests: pure pieces first, then whole nodes over 127.0.0.1 (real sockets, mDNS
//! off).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ephemera_proto::auth::{ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::federated::{self, FederatedReport};
use ephemera_proto::report::ReportType;
use ephemera_proto::revision::{Binding, HmacBinding, RevisionSecret};
use ephemera_proto::signing::KeyId;
use ephemera_proto::upload::UploadId;
use ephemera_proto::{DayNumber, ReportContents, ReportLimits, wire};
use futures::io::Cursor;
use libp2p::gossipsub::MessageAcceptance;
use libp2p::request_response::Codec;
use ring::digest;

use super::sync::{
    MAX_DIGEST_DAYS, MAX_FETCH_IDS, OutgoingReply, SYNC_PROTOCOL, SyncCodec, SyncReply,
    SyncRequest, SyncResponse, answer, answer_within,
};
use super::testing::{LocalCluster, LocalNode, RecordingStore, UploadFactory, wait_until};
use super::validate::{Verdict, Verifier, judge};
use super::*;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn message_id(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, bytes).as_ref().to_vec()
}

fn verifier(factory: &UploadFactory) -> Verifier {
    Verifier::new(
        factory.trusted(),
        TrustedAuthorities::new(),
        ReportLimits::default(),
    )
}

/// The key id of `factory`'s authority: the topic its reports travel on.
fn topic_of(factory: &UploadFactory) -> KeyId {
    factory.public_key().key_id()
}

/// The forgeries gossip must reject (bad signature, wrong HMAC: `docs/PROTOCOL.md`
/// §4.2–§4.3; a revision not signed by the key its certificate binds, §5.4), plus garbage.
/// An upload of an authority this node does not trust is not among them: it is ignored
/// (partial trust), see `gossip_verdicts_follow_the_checks`.
fn forgeries(honest: &UploadFactory) -> Vec<(&'static str, Vec<u8>)> {
    let mut bad_signature = honest.signed(2);
    bad_signature.certificate.signature.0[0] ^= 1;
    let mut wrong_hmac = honest.signed(2);
    if let ReportContents::Pet(tokens) = &mut wrong_hmac.contents {
        tokens[0].token.0[0] ^= 1;
    }
    vec![
        ("bad-signature", wire::encode(&bad_signature)),
        ("hmac-mismatch", wire::encode(&wrong_hmac)),
        (
            "bad-revision-signature",
            federated::encode(&forged_revision(honest)),
        ),
        (
            "malformed",
            vec![wire::WIRE_VERSION, wire::kind::SIGNED_UPLOAD, 0xff],
        ),
    ]
}

/// A phone's version 2 upload (`likely`, bound to the key of `phone`) and its revision to
/// `to`, signed by `phone`, as nodes relay them.
fn bound_report(
    factory: &UploadFactory,
    phone: &RevisionSecret,
    to: ReportType,
) -> (FederatedReport, FederatedReport) {
    let key = phone.key();
    // In canonical order, as nodes relay uploads.
    let mut contents = UploadFactory::contents(3);
    contents.canonicalize();
    let original = factory.certify(
        contents,
        ReportType::ConfirmedClinicalDiagnosis,
        HmacBinding::Upload(key),
    );
    let revises = original.certificate.certificate.id;
    let revision = factory.certify(original.contents.clone(), to, HmacBinding::Revision(key));
    let signature = phone.sign(&revises, &revision.certificate);
    (
        FederatedReport {
            upload: original,
            binding: Binding::Upload(key),
        },
        FederatedReport {
            upload: revision,
            binding: Binding::Revision {
                key,
                revises,
                signature,
            },
        },
    )
}

/// A revocation of someone else's report, certified (with a code of the same authority)
/// bound to the victim's key, which travels with the report, but signed by the forger.
fn forged_revision(factory: &UploadFactory) -> FederatedReport {
    let victim = RevisionSecret::generate(&mut rand::rng());
    let (_, mut revision) = bound_report(factory, &victim, ReportType::Revoked);
    let forger = RevisionSecret::generate(&mut rand::rng());
    if let Binding::Revision {
        revises, signature, ..
    } = &mut revision.binding
    {
        *signature = forger.sign(revises, &revision.upload.certificate);
    }
    revision
}

/// Gossip carries a version 2 upload with its revision key and a signed revision with its
/// proof; each is checked against its key. A peer that re-keys a report it received is
/// refused (the certified HMAC covers the key) and penalised, and so is one that relays a
/// revision it signed itself under the victim's key; a revision of a report not held here
/// yet waits for catch-up, unpenalised; a duplicate revision is ignored.
#[test]
fn gossip_checks_revision_keys_and_signatures() {
    let factory = UploadFactory::new();
    let verifier = verifier(&factory);
    let store = MemoryFederationStore::new();
    let now = SystemClock.now();
    let topic = topic_of(&factory);
    let check = |bytes: &[u8]| verifier.check_gossip(&store, &message_id(bytes), bytes, topic, now);
    let phone = RevisionSecret::generate(&mut rand::rng());
    let (original, revision) = bound_report(&factory, &phone, ReportType::ConfirmedTest);

    // The revision before its report: valid, not applicable yet, no fault of the sender.
    let revision_bytes = federated::encode(&revision);
    assert_eq!(
        (revision_bytes[0], revision_bytes[1]),
        (2, wire::kind::FEDERATED_REPORT)
    );
    assert_eq!(check(&revision_bytes), Verdict::Later("original-missing"));
    assert!(!judge(Verdict::Later("original-missing")).penalise);
    assert!(!judge(Verdict::Later("original-missing")).refuse);

    // A hostile peer's copy of the report under its own key, or stripped of its key.
    let attacker = RevisionSecret::generate(&mut rand::rng());
    let rekeyed = FederatedReport {
        upload: original.upload.clone(),
        binding: Binding::Upload(attacker.key()),
    };
    assert_eq!(
        check(&federated::encode(&rekeyed)),
        Verdict::Reject("hmac-mismatch")
    );
    assert_eq!(
        check(&wire::encode(&original.upload)),
        Verdict::Reject("hmac-mismatch")
    );
    let bytes = federated::encode(&original);
    assert_eq!(check(&bytes), Verdict::Accept);
    assert_eq!(
        store.get(&original.upload.content_id()).unwrap(),
        Some(original.clone()),
        "kept with its key, served so in catch-up"
    );

    // A revision signed by another key than its certificate binds: a forgery.
    assert_eq!(
        check(&federated::encode(&forged_revision(&factory))),
        Verdict::Reject("bad-revision-signature")
    );
    // A revision the forger signed under the victim's key it claims: the signature fails.
    let mut stolen = revision.clone();
    if let Binding::Revision { signature, .. } = &mut stolen.binding {
        *signature = attacker.sign(
            &original.upload.certificate.certificate.id,
            &stolen.upload.certificate,
        );
    }
    assert_eq!(
        check(&federated::encode(&stolen)),
        Verdict::Reject("bad-revision-signature")
    );

    // The phone's revision: accepted once, then a duplicate.
    assert_eq!(check(&revision_bytes), Verdict::Accept);
    assert_eq!(check(&revision_bytes), Verdict::Ignore("duplicate"));
    // A revision in a non-canonical encoding (entries reversed) is refused as gossip.
    let (_, mut shuffled) = bound_report(&factory, &phone, ReportType::ConfirmedTest);
    if let ReportContents::Pet(tokens) = &mut shuffled.upload.contents {
        tokens.reverse();
    }
    assert_eq!(
        check(&federated::encode(&shuffled)),
        Verdict::Reject("non-canonical")
    );
}

#[test]
fn gossip_verdicts_follow_the_checks() {
    let factory = UploadFactory::new();
    let verifier = verifier(&factory);
    let store = MemoryFederationStore::new();
    let now = SystemClock.now();
    let topic = topic_of(&factory);

    for (reason, bytes) in forgeries(&factory) {
        assert_eq!(
            verifier.check_gossip(&store, &message_id(&bytes), &bytes, topic, now),
            Verdict::Reject(reason)
        );
    }
    // Another authority's valid upload on its own topic: ignored, not a forgery; nothing
    // stored. On this authority's topic it is a lie about its topic, which no honest node
    // tells.
    let other_factory = UploadFactory::new();
    let other = other_factory.signed(2);
    let bytes = wire::encode(&other);
    assert_eq!(
        verifier.check_gossip(
            &store,
            &message_id(&bytes),
            &bytes,
            topic_of(&other_factory),
            now
        ),
        Verdict::Ignore("untrusted-authority")
    );
    assert_eq!(
        verifier.check_gossip(&store, &message_id(&bytes), &bytes, topic, now),
        Verdict::Reject("wrong-topic")
    );
    assert!(store.is_empty());

    let upload = factory.upload(3);
    let bytes = wire::encode(upload.upload());
    assert_eq!(
        message_id(&bytes),
        upload.id().0,
        "message id is the upload id"
    );
    assert_eq!(
        verifier.check_gossip(&store, &message_id(&bytes), &bytes, topic, now),
        Verdict::Accept
    );
    assert!(store.holds(&upload.id()));
    assert_eq!(
        verifier.check_gossip(&store, &message_id(&bytes), &bytes, topic, now),
        Verdict::Ignore("duplicate")
    );

    // The same report in a non-canonical order verifies but is refused as gossip.
    let mut shuffled = factory.upload(3).into_inner();
    if let ReportContents::Pet(tokens) = &mut shuffled.contents {
        tokens.reverse();
    }
    let bytes = wire::encode(&shuffled);
    assert_eq!(
        verifier.check_gossip(&store, &message_id(&bytes), &bytes, topic, now),
        Verdict::Reject("non-canonical")
    );

    // Clock edges are ignored, not punished: a certificate from 20 days ago.
    let old = factory.signed(1);
    let bytes = wire::encode(&old);
    let later = now.plus_seconds(20 * 86_400);
    assert!(matches!(
        verifier.check_gossip(&store, &message_id(&bytes), &bytes, topic, later),
        Verdict::Ignore(_)
    ));
}

/// A relay verifies a report of an authority it relays for exactly like one it trusts,
/// forwards it once, and stores nothing; a forgery under that authority is provably bad and
/// rejected.
#[test]
fn a_relay_verifies_forwards_once_and_keeps_nothing() {
    let (own, relayed) = (UploadFactory::new(), UploadFactory::new());
    let verifier = Verifier::new(own.trusted(), relayed.trusted(), ReportLimits::default());
    let store = MemoryFederationStore::new();
    let now = SystemClock.now();
    let topic = topic_of(&relayed);

    let upload = relayed.upload(3);
    let bytes = wire::encode(upload.upload());
    let check = |bytes: &[u8]| verifier.check_gossip(&store, &message_id(bytes), bytes, topic, now);
    assert_eq!(check(&bytes), Verdict::Relay);
    assert_eq!(check(&bytes), Verdict::Ignore("duplicate"));
    assert!(store.is_empty(), "a relay keeps nothing");
    assert_eq!(judge(Verdict::Relay).acceptance, MessageAcceptance::Accept);
    assert!(!judge(Verdict::Relay).penalise);

    for (reason, bytes) in forgeries(&relayed) {
        assert_eq!(check(&bytes), Verdict::Reject(reason));
    }
    // Catch-up never takes a relayed authority's report.
    let report = FederatedReport {
        upload: relayed.signed(2),
        binding: Binding::Unbound,
    };
    assert_eq!(
        verifier.verify(report, now).map(|_| ()),
        Err(Verdict::Ignore("untrusted-authority"))
    );
}

#[test]
fn sync_answers_are_clamped_to_retention_and_caps() {
    let factory = UploadFactory::new();
    let store = MemoryFederationStore::new();
    let mut ids = BTreeSet::new();
    for _ in 0..5 {
        let upload = factory.upload(1);
        ids.insert(upload.id());
        store.store_local(upload);
    }
    let today = SystemClock.now().day();

    // A huge range is clamped to the window and the digest cap.
    let SyncResponse::Digests { from, to, days } = answer(
        &store,
        SyncRequest::Digests {
            from: DayNumber(0),
            to: DayNumber(u32::MAX),
        },
        today,
        14,
    )
    .unwrap() else {
        panic!("wrong response kind")
    };
    assert_eq!(from, today.minus(14));
    assert_eq!(to, today.plus(1));
    assert!(to.0 - from.0 < MAX_DIGEST_DAYS);
    assert_eq!(days.len(), 1);
    assert_eq!(days[0].count, 5);
    assert_eq!(days[0], store.day_digest(today).unwrap());

    // Pages are ascending and resume after the cursor.
    let SyncResponse::Ids {
        ids: first, more, ..
    } = answer(
        &store,
        SyncRequest::Ids {
            day: today,
            after: None,
            limit: 2,
        },
        today,
        14,
    )
    .unwrap()
    else {
        panic!("wrong response kind")
    };
    assert!(more);
    assert_eq!(first, ids.iter().copied().take(2).collect::<Vec<_>>());
    let SyncResponse::Ids {
        ids: rest, more, ..
    } = answer(
        &store,
        SyncRequest::Ids {
            day: today,
            after: first.last().copied(),
            limit: 10,
        },
        today,
        14,
    )
    .unwrap()
    else {
        panic!("wrong response kind")
    };
    assert!(!more);
    assert_eq!(rest.len(), 3);

    // Nothing older than retention is ever served: seen from 20 days later, the day is out.
    let later = today.plus(20);
    let SyncResponse::Ids { ids: none, .. } = answer(
        &store,
        SyncRequest::Ids {
            day: today,
            after: None,
            limit: 10,
        },
        later,
        14,
    )
    .unwrap() else {
        panic!("wrong response kind")
    };
    assert!(none.is_empty());
    let wanted: Vec<UploadId> = ids.iter().copied().collect();
    let SyncResponse::Uploads { uploads } = answer(
        &store,
        SyncRequest::Fetch {
            ids: wanted.clone(),
        },
        later,
        14,
    )
    .unwrap() else {
        panic!("wrong response kind")
    };
    assert!(uploads.is_empty());

    // A fetch returns what it has, and considers at most MAX_FETCH_IDS ids.
    let mut many = vec![UploadId([0; 32]); MAX_FETCH_IDS];
    many.extend(wanted.iter().copied());
    let SyncResponse::Uploads { uploads } =
        answer(&store, SyncRequest::Fetch { ids: many }, today, 14).unwrap()
    else {
        panic!("wrong response kind")
    };
    assert!(uploads.is_empty(), "ids past the cap are not looked at");
    let SyncResponse::Uploads { uploads } =
        answer(&store, SyncRequest::Fetch { ids: wanted }, today, 14).unwrap()
    else {
        panic!("wrong response kind")
    };
    assert_eq!(uploads.len(), 5);
}

/// Issue #32, attack 1: one id repeated 256 times is answered once, and an answer stops at
/// the node's page size (the requester asks again for the rest).
#[test]
fn fetch_answers_are_deduplicated_and_paged_by_bytes() {
    let factory = UploadFactory::new();
    let store = MemoryFederationStore::new();
    let big: Vec<_> = (0..4).map(|_| factory.upload(5_000)).collect();
    for upload in &big {
        store.store_local(upload.clone());
    }
    let today = SystemClock.now().day();
    let one = big[0].id();
    let size = wire::encode(big[0].upload()).len();
    let SyncResponse::Uploads { uploads } = answer(
        &store,
        SyncRequest::Fetch {
            ids: vec![one; MAX_FETCH_IDS],
        },
        today,
        14,
    )
    .unwrap() else {
        panic!("wrong response kind")
    };
    assert_eq!(uploads.len(), 1, "a repeated id is served once");

    // A page of 2.5 uploads holds 2; a page smaller than one upload still holds one.
    let all: Vec<UploadId> = big.iter().map(|u| u.id()).collect();
    for (page, want) in [(size * 5 / 2, 2), (size / 2, 1), (size * 10, 4)] {
        let SyncResponse::Uploads { uploads } = answer_within(
            &store,
            SyncRequest::Fetch { ids: all.clone() },
            today,
            14,
            page,
        )
        .unwrap() else {
            panic!("wrong response kind")
        };
        assert_eq!(uploads.len(), want, "page of {page} bytes");
    }
}

#[tokio::test]
async fn sync_codec_round_trips_and_refuses_oversized_frames() {
    let mut codec = SyncCodec;
    let request = SyncRequest::Ids {
        day: DayNumber(20_000),
        after: Some(UploadId([7; 32])),
        limit: 100,
    };
    let mut buf = Cursor::new(Vec::new());
    codec
        .write_request(&SYNC_PROTOCOL, &mut buf, request.clone())
        .await
        .unwrap();
    let mut read = Cursor::new(buf.into_inner());
    assert_eq!(
        codec.read_request(&SYNC_PROTOCOL, &mut read).await.unwrap(),
        request
    );

    let factory = UploadFactory::new();
    let response = SyncResponse::Uploads {
        uploads: vec![factory.upload(2).into_inner()],
    };
    let mut buf = Cursor::new(Vec::new());
    codec
        .write_response(&SYNC_PROTOCOL, &mut buf, response.clone().into())
        .await
        .unwrap();
    let received = buf.into_inner();
    let mut read = Cursor::new(received.clone());
    assert_eq!(
        codec
            .read_response(&SYNC_PROTOCOL, &mut read)
            .await
            .unwrap()
            .into_response()
            .unwrap(),
        response
    );
    // A pre-encoded answer (how this node answers) puts the same bytes on the stream.
    let mut buf = Cursor::new(Vec::new());
    let outgoing = OutgoingReply::encode(&response, Vec::new()).unwrap();
    codec
        .write_response(&SYNC_PROTOCOL, &mut buf, SyncReply::Outgoing(outgoing))
        .await
        .unwrap();
    assert_eq!(buf.into_inner(), received);

    // A length prefix over the request cap is refused before anything is read.
    let mut huge = Cursor::new(u32::MAX.to_be_bytes().to_vec());
    let err = codec
        .read_request(&SYNC_PROTOCOL, &mut huge)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    // A truncated frame is an error, not a hang or a panic.
    let mut short = Cursor::new(vec![0, 0, 0, 10, 1, 6]);
    assert!(
        codec
            .read_request(&SYNC_PROTOCOL, &mut short)
            .await
            .is_err()
    );
    // A frame of the wrong kind is refused.
    let mut frame = 2u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[wire::WIRE_VERSION, wire::kind::SIGNED_UPLOAD]);
    assert!(
        codec
            .read_request(&SYNC_PROTOCOL, &mut Cursor::new(frame))
            .await
            .is_err()
    );
}

#[test]
fn memory_store_enforces_single_use_and_purges() {
    let factory = UploadFactory::new();
    let store = MemoryFederationStore::new();
    let upload = factory.upload(2);
    assert_eq!(store.store_local(upload.clone()), StoreOutcome::Stored);
    assert_eq!(
        store.store_local(upload.clone()),
        StoreOutcome::AlreadyStored
    );
    assert_eq!(store.store_local(factory.upload(2)), StoreOutcome::Stored);
    let day = sync_day(upload.upload());
    assert_eq!(store.day_digest(day).unwrap().count, 2);
    // The maintained digest equals one computed from the ids.
    let mut paged = DayDigest::empty(day);
    for id in store.ids_for_day(day, None, 10).unwrap() {
        paged.add(&id);
    }
    assert_eq!(store.day_digest(day).unwrap(), paged);
    store.purge_before(day.plus(1));
    assert!(store.is_empty());
    assert_eq!(store.day_digest(day).unwrap(), DayDigest::empty(day));
}

// ---- whole nodes over loopback ----------------------------------------------------------

fn test_config(factory: &UploadFactory) -> FederationConfig {
    let mut config = FederationConfig::default()
        .with_trusted_authorities(factory.trusted())
        .with_sync_interval(Duration::from_secs(2));
    config.redial_interval = Duration::from_secs(1);
    config
}

const PROPAGATION: Duration = Duration::from_secs(10);

/// Polls `done` every 50 ms until it holds or `timeout` passes.
async fn wait_until_async<F: std::future::Future<Output = bool>>(
    timeout: Duration,
    mut done: impl FnMut() -> F,
) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Starts a node with a fresh identity and an empty recording store.
async fn start_node(config: FederationConfig, bootstrap: Vec<Multiaddr>) -> LocalNode {
    LocalNode::start(
        config,
        NodeIdentity::generate(),
        Arc::new(RecordingStore::new()),
        bootstrap,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_published_at_a_reaches_c() {
    init_tracing();
    let factory = UploadFactory::new();
    let cluster = LocalCluster::start(3, |_| test_config(&factory))
        .await
        .unwrap();
    assert!(cluster.wait_for_mesh(PROPAGATION).await, "mesh formed");

    let upload = factory.upload(5);
    let id = upload.id();
    let a = &cluster.nodes[0];
    assert_eq!(a.store.store_local(upload.clone()), StoreOutcome::Stored);
    a.handle.publish(upload).await.unwrap();
    assert!(
        cluster.wait_for(&id, PROPAGATION).await,
        "every node stores it"
    );
    let c = &cluster.nodes[2];
    assert_eq!(
        c.store.get(&id).unwrap().map(|u| wire::encode(&u)),
        a.store.get(&id).unwrap().map(|u| wire::encode(&u))
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up() {
    init_tracing();
    let factory = UploadFactory::new();
    let mut cluster = LocalCluster::start(3, |_| test_config(&factory))
        .await
        .unwrap();
    assert!(cluster.wait_for_mesh(PROPAGATION).await);

    // C goes down; A publishes while it is away.
    cluster.nodes[2].stop().await;
    let mut ids = Vec::new();
    for _ in 0..9 {
        let upload = factory.upload(3);
        ids.push(upload.id());
        cluster.nodes[0].store.store_local(upload.clone());
        cluster.nodes[0].handle.publish(upload).await.unwrap();
    }
    let b = cluster.nodes[1].store.clone();
    assert!(wait_until(PROPAGATION, || ids.iter().all(|id| b.holds(id))).await);
    let c_store = cluster.nodes[2].store.clone();
    assert!(ids.iter().all(|id| !c_store.holds(id)), "C was down");

    // C restarts: a new event loop over the same store and identity, on a new port; small
    // pages and fetch batches make it page through what it missed.
    let c_identity = cluster.nodes[2].identity.clone();
    let mut config = test_config(&factory);
    config.sync_page_size = 2;
    config.sync_fetch_batch = 3;
    let restarted = LocalNode::start(
        config,
        c_identity,
        c_store.clone(),
        vec![cluster.nodes[0].tcp_addr()],
    )
    .await
    .unwrap();
    assert_eq!(
        restarted.handle.peer_id(),
        cluster.nodes[2].handle.peer_id()
    );
    cluster.nodes[2] = restarted;
    assert!(
        wait_until(PROPAGATION, || ids.iter().all(|id| c_store.holds(id))).await,
        "C caught up"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals_and_everyone_converges() {
    init_tracing();
    let factory = UploadFactory::new();
    let cluster = LocalCluster::start(4, |_| test_config(&factory))
        .await
        .unwrap();
    assert!(cluster.wait_for_mesh(PROPAGATION).await);
    let nodes = &cluster.nodes;
    let (left, right) = nodes.split_at(2);

    // Partition {0, 1} | {2, 3}: each side bans the other.
    for l in left {
        for r in right {
            l.handle.ban(r.handle.peer_id(), None).await.unwrap();
            r.handle.ban(l.handle.peer_id(), None).await.unwrap();
        }
    }
    let mut separated = false;
    let deadline = Instant::now() + PROPAGATION;
    while !separated && Instant::now() < deadline {
        separated = true;
        for l in left {
            let status = l.handle.status().await.unwrap();
            separated &= right
                .iter()
                .all(|r| !status.connected_peers.contains(&r.handle.peer_id()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(separated, "partition in place");

    // Each side gets uploads the other misses.
    let mut all = Vec::new();
    for (origin, witness) in [(0, 1), (2, 3)] {
        let mut ids = Vec::new();
        for _ in 0..4 {
            let upload = factory.upload(2);
            ids.push(upload.id());
            nodes[origin].store.store_local(upload.clone());
            nodes[origin].handle.publish(upload).await.unwrap();
        }
        let store = nodes[witness].store.clone();
        assert!(wait_until(PROPAGATION, || ids.iter().all(|id| store.holds(id))).await);
        all.extend(ids);
    }
    assert!(!nodes[2].store.holds(&all[0]));
    assert!(!nodes[0].store.holds(&all[4]));

    // Heal: lift the bans and reconnect one pair; catch-up and re-gossip do the rest.
    for l in left {
        for r in right {
            l.handle.unban(r.handle.peer_id()).await.unwrap();
            r.handle.unban(l.handle.peer_id()).await.unwrap();
        }
    }
    nodes[1].handle.dial(nodes[2].tcp_addr()).await.unwrap();
    let stores: Vec<Arc<RecordingStore>> = nodes.iter().map(|n| n.store.clone()).collect();
    assert!(
        wait_until(Duration::from_secs(20), || stores
            .iter()
            .all(|s| all.iter().all(|id| s.holds(id))))
        .await,
        "all converge"
    );
    let expected: BTreeSet<UploadId> = all.iter().copied().collect();
    for store in &stores {
        assert_eq!(
            store.memory().ids(),
            expected,
            "nothing missing, nothing extra"
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forger_is_rejected_and_penalised_while_honest_traffic_flows() {
    init_tracing();
    let factory = UploadFactory::new();
    let mut cluster = LocalCluster::start(3, |_| test_config(&factory))
        .await
        .unwrap();
    assert!(cluster.wait_for_mesh(PROPAGATION).await);

    // The forger runs the same software but publishes raw bytes, bypassing verification.
    let forger = start_node(test_config(&factory), vec![cluster.nodes[0].tcp_addr()]).await;
    let forger_id = forger.handle.peer_id();
    let deadline = Instant::now() + PROPAGATION;
    while forger.handle.status().await.unwrap().topic_peers == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give gossipsub one heartbeat to graft the forger into a mesh.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let forged = forgeries(&factory);
    let forged_ids: Vec<UploadId> = forged
        .iter()
        .map(|(_, bytes)| UploadId(message_id(bytes).try_into().unwrap()))
        .collect();
    for (_, bytes) in forged {
        forger.handle.publish_raw(bytes).await.unwrap();
    }

    // Every honest node that heard the forger penalised it: score below zero, or banned.
    let a = &cluster.nodes[0];
    let deadline = Instant::now() + PROPAGATION;
    let mut punished = false;
    while !punished && Instant::now() < deadline {
        let status = a.handle.status().await.unwrap();
        punished = status.banned_peers.contains(&forger_id)
            || status.score_of(&forger_id).is_some_and(|s| s < 0.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(punished, "forger penalised at A");
    // Three invalid messages cost far more than the graylist threshold: A bans it.
    let mut banned = false;
    let deadline = Instant::now() + PROPAGATION;
    while !banned && Instant::now() < deadline {
        let status = a.handle.status().await.unwrap();
        banned = status.banned_peers.contains(&forger_id)
            && !status.connected_peers.contains(&forger_id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(banned, "forger banned and disconnected at A");

    // Honest traffic still flows, and no forgery was stored anywhere honest.
    let upload = factory.upload(4);
    let id = upload.id();
    cluster.nodes[1].store.store_local(upload.clone());
    cluster.nodes[1].handle.publish(upload).await.unwrap();
    assert!(cluster.wait_for(&id, PROPAGATION).await);
    for node in &cluster.nodes {
        for forged in &forged_ids {
            assert!(!node.store.holds(forged));
        }
    }
    let mut forger = forger;
    forger.stop().await;
    cluster.nodes.push(forger);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_alone_carries_gossip_and_catch_up() {
    init_tracing();
    let factory = UploadFactory::new();
    let quic_only = || {
        let mut config = test_config(&factory);
        config.listen_addrs = vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()];
        config
    };
    let a = start_node(quic_only(), vec![]).await;
    // Stored before B exists: B gets it by catch-up; the second by gossip.
    let early = factory.upload(2);
    a.store.store_local(early.clone());
    let quic = a.quic_addr().expect("A listens on QUIC");
    let b = start_node(quic_only(), vec![quic]).await;
    let mut cluster = LocalCluster { nodes: vec![a, b] };
    assert!(cluster.wait_for_mesh(PROPAGATION).await);
    assert!(
        cluster.wait_for(&early.id(), PROPAGATION).await,
        "caught up over QUIC"
    );
    let late = factory.upload(2);
    cluster.nodes[0].store.store_local(late.clone());
    cluster.nodes[0].handle.publish(late.clone()).await.unwrap();
    assert!(
        cluster.wait_for(&late.id(), PROPAGATION).await,
        "gossip over QUIC"
    );
    for node in &mut cluster.nodes {
        node.stop().await;
    }
}

/// A recording store that can also serve forged uploads (to test catch-up validation) and
/// fail its reads while `failing_reads` is set. Writes always work, so a node that took a
/// failed read for "not held" would visibly fetch and store what it could not check.
#[derive(Default)]
struct TestStore {
    honest: RecordingStore,
    forged: Vec<(UploadId, FederatedReport)>,
    failing_reads: std::sync::atomic::AtomicBool,
}

impl TestStore {
    fn failing() -> Self {
        let store = TestStore::default();
        store.set_failing(true);
        store
    }

    fn set_failing(&self, failing: bool) {
        self.failing_reads
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    fn read(&self) -> Result<(), StoreError> {
        if self.failing_reads.load(std::sync::atomic::Ordering::SeqCst) {
            Err(StoreError("read failed (test)".into()))
        } else {
            Ok(())
        }
    }
}

impl FederationStore for TestStore {
    fn contains(&self, id: &UploadId) -> Result<bool, StoreError> {
        self.read()?;
        self.honest.contains(id)
    }

    fn store_relayed(
        &self,
        upload: ephemera_proto::upload::VerifiedUpload,
    ) -> Result<StoreOutcome, StoreError> {
        self.honest.store_relayed(upload)
    }

    fn ids_for_day(
        &self,
        day: DayNumber,
        after: Option<UploadId>,
        limit: usize,
    ) -> Result<Vec<UploadId>, StoreError> {
        self.read()?;
        let mut ids: BTreeSet<UploadId> = self
            .honest
            .ids_for_day(day, None, usize::MAX)?
            .into_iter()
            .collect();
        ids.extend(
            self.forged
                .iter()
                .filter(|(_, u)| sync_day(&u.upload) == day)
                .map(|(id, _)| *id),
        );
        Ok(ids
            .into_iter()
            .filter(|id| after.is_none_or(|a| *id > a))
            .take(limit)
            .collect())
    }

    fn get(&self, id: &UploadId) -> Result<Option<FederatedReport>, StoreError> {
        self.read()?;
        Ok(self.honest.get(id)?.or_else(|| {
            self.forged
                .iter()
                .find(|(f, _)| f == id)
                .map(|(_, u)| u.clone())
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_rejects_forged_uploads_and_penalises_the_server() {
    init_tracing();
    let factory = UploadFactory::new();
    let forged: Vec<(UploadId, FederatedReport)> = forgeries(&factory)
        .into_iter()
        .filter_map(|(_, bytes)| {
            let report = federated::decode(&bytes).ok()?;
            Some((report.upload.content_id(), report))
        })
        .collect();
    assert_eq!(forged.len(), 3);
    let forged_ids: Vec<UploadId> = forged.iter().map(|(id, _)| *id).collect();
    let honest_upload = factory.upload(2);
    let server_store = Arc::new(TestStore {
        forged,
        ..TestStore::default()
    });
    server_store.honest.store_local(honest_upload.clone());
    let (server, server_join) = Federation::spawn(
        test_config(&factory),
        NodeIdentity::generate(),
        server_store.clone(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let server_addr = server.listen_addrs().await.unwrap()[0]
        .clone()
        .with(libp2p::multiaddr::Protocol::P2p(server.peer_id()));

    // Penalties halve every second here (5 minutes by default), to watch them decay.
    let mut client_config = test_config(&factory);
    client_config.penalty_half_life = Duration::from_secs(1);
    let client = start_node(client_config, vec![server_addr]).await;
    let server_id = server.peer_id();
    let mut penalised = false;
    let deadline = Instant::now() + PROPAGATION;
    while !penalised && Instant::now() < deadline {
        let status = client.handle.status().await.unwrap();
        penalised = status.score_of(&server_id).is_some_and(|s| s < -10.0)
            || status.banned_peers.contains(&server_id);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(penalised, "the forging server lost score");
    for id in &forged_ids {
        assert!(!client.store.holds(id), "no forgery stored");
    }
    // The forgeries are refused from now on, so no new fault: the penalty decays (issue
    // #32, attack 7: penalties never decayed, and a peer was banned again the moment its
    // ban ended).
    let recovered = wait_until_async(PROPAGATION, || async {
        client
            .handle
            .status()
            .await
            .unwrap()
            .score_of(&server_id)
            .is_some_and(|s| s > -2.0)
    })
    .await;
    assert!(recovered, "the penalty did not decay");
    let mut client = client;
    client.stop().await;
    server.shutdown().await.unwrap();
    server_join.await.unwrap();
}

/// Propagation latency across 10 nodes on loopback: `cargo test -p ephemera-node --
/// --ignored --nocapture propagation_latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints p50/p99 propagation latency over 10 nodes"]
async fn propagation_latency_10_nodes() {
    const NODES: usize = 10;
    const UPLOADS: usize = 100;
    let factory = UploadFactory::new();
    let cluster = LocalCluster::start(NODES, |_| test_config(&factory))
        .await
        .unwrap();
    assert!(cluster.wait_for_mesh(Duration::from_secs(30)).await);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut latencies = Vec::new();
    for i in 0..UPLOADS {
        let origin = &cluster.nodes[i % NODES];
        let upload = factory.upload(10);
        let id = upload.id();
        let sent = Instant::now();
        origin.store.store_local(upload.clone());
        origin.handle.publish(upload).await.unwrap();
        assert!(cluster.wait_for(&id, Duration::from_secs(10)).await);
        for node in &cluster.nodes {
            if node.handle.peer_id() != origin.handle.peer_id() {
                let arrival = node.store.arrival(&id).unwrap();
                latencies.push(arrival.saturating_duration_since(sent));
            }
        }
        // Per-report "reached all" latency is the max over nodes; collected via the above.
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "federation propagation over {NODES} nodes, {UPLOADS} uploads, {} deliveries: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        pct(0.50),
        pct(0.99),
        latencies.last().unwrap()
    );
    assert!(pct(0.99) < Duration::from_secs(1), "p99 under one second");
    cluster.stop().await;
}

#[test]
fn forged_uploads_fail_verification_for_the_expected_reason() {
    // Guard for the test fixtures themselves: each forgery fails the intended check.
    let factory = UploadFactory::new();
    let now = SystemClock.now();
    for (reason, bytes) in forgeries(&factory) {
        let Ok(report) = federated::decode(&bytes) else {
            assert_eq!(reason, "malformed");
            continue;
        };
        let err = report
            .upload
            .verify_bound(
                report.binding,
                &factory.trusted(),
                now,
                ExpiryPolicy::Relayed { retention_days: 14 },
                &ReportLimits::default(),
            )
            .unwrap_err();
        assert_eq!(validate::classify(&err), Verdict::Reject(reason));
    }
}

/// A burst of uploads published at random nodes of a 10-node cluster: time until every
/// node holds every upload. `cargo test -p ephemera-node -- --ignored --nocapture burst`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints burst convergence time over 10 nodes"]
async fn burst_convergence_10_nodes() {
    const NODES: usize = 10;
    const UPLOADS: usize = 500;
    let factory = UploadFactory::new();
    let cluster = LocalCluster::start(NODES, |_| test_config(&factory))
        .await
        .unwrap();
    assert!(cluster.wait_for_mesh(Duration::from_secs(30)).await);
    tokio::time::sleep(Duration::from_secs(2)).await;

    let uploads: Vec<_> = (0..UPLOADS).map(|_| factory.upload(10)).collect();
    let ids: Vec<UploadId> = uploads.iter().map(|u| u.id()).collect();
    let start = Instant::now();
    for (i, upload) in uploads.into_iter().enumerate() {
        let origin = &cluster.nodes[i % NODES];
        origin.store.store_local(upload.clone());
        origin.handle.publish(upload).await.unwrap();
    }
    let published = start.elapsed();
    let stores: Vec<Arc<RecordingStore>> = cluster.nodes.iter().map(|n| n.store.clone()).collect();
    let converged = wait_until(Duration::from_secs(60), || {
        stores.iter().all(|s| ids.iter().all(|id| s.holds(id)))
    })
    .await;
    let mut latest = Duration::ZERO;
    for store in &stores {
        for id in &ids {
            if let Some(t) = store.arrival(id) {
                latest = latest.max(t.saturating_duration_since(start));
            }
        }
    }
    println!(
        "burst of {UPLOADS} uploads over {NODES} nodes: published in {published:?}, \
         all stored everywhere after {latest:?} (converged: {converged})"
    );
    assert!(converged);
    cluster.stop().await;
}

/// A global `metrics` recorder that keeps counters, keyed `name{k=v,...}`.
#[derive(Default)]
struct CountingRecorder {
    counters: std::sync::Mutex<std::collections::HashMap<String, Arc<CountingCounter>>>,
}

#[derive(Default)]
struct CountingCounter(std::sync::atomic::AtomicU64);

impl ::metrics::CounterFn for CountingCounter {
    fn increment(&self, value: u64) {
        self.0
            .fetch_add(value, std::sync::atomic::Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0
            .fetch_max(value, std::sync::atomic::Ordering::Relaxed);
    }
}

struct SharedRecorder(Arc<CountingRecorder>);

impl ::metrics::Recorder for SharedRecorder {
    fn describe_counter(
        &self,
        _: ::metrics::KeyName,
        _: Option<::metrics::Unit>,
        _: ::metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: ::metrics::KeyName,
        _: Option<::metrics::Unit>,
        _: ::metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: ::metrics::KeyName,
        _: Option<::metrics::Unit>,
        _: ::metrics::SharedString,
    ) {
    }

    fn register_counter(
        &self,
        key: &::metrics::Key,
        _: &::metrics::Metadata<'_>,
    ) -> ::metrics::Counter {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let counter = self
            .0
            .counters
            .lock()
            .unwrap()
            .entry(name)
            .or_default()
            .clone();
        ::metrics::Counter::from_arc(counter)
    }

    fn register_gauge(&self, _: &::metrics::Key, _: &::metrics::Metadata<'_>) -> ::metrics::Gauge {
        ::metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &::metrics::Key,
        _: &::metrics::Metadata<'_>,
    ) -> ::metrics::Histogram {
        ::metrics::Histogram::noop()
    }
}

impl CountingRecorder {
    fn get(&self, name: &str) -> u64 {
        self.counters
            .lock()
            .unwrap()
            .get(name)
            .map_or(0, |c| c.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The process-wide counting recorder, installed by the first test that asks. Tests running
/// at the same time only add to the counts, so every check on it is a lower bound.
fn recorder() -> Arc<CountingRecorder> {
    static RECORDER: std::sync::OnceLock<Arc<CountingRecorder>> = std::sync::OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let recorder = Arc::new(CountingRecorder::default());
            ::metrics::set_global_recorder(SharedRecorder(recorder.clone()))
                .expect("only this function installs a recorder");
            recorder
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_verdicts_and_sync() {
    let recorder = recorder();

    let factory = UploadFactory::new();
    let cluster = LocalCluster::start(2, |_| test_config(&factory))
        .await
        .unwrap();
    assert!(cluster.wait_for_mesh(PROPAGATION).await);
    let (honest, forger) = (&cluster.nodes[0], &cluster.nodes[1]);
    let (_, bad_signature) = forgeries(&factory).swap_remove(0);
    forger.handle.publish_raw(bad_signature).await.unwrap();
    let upload = factory.upload(1);
    honest.store.store_local(upload.clone());
    honest.handle.publish(upload).await.unwrap();
    let rejected = "ephemera_federation_gossip_total{reason=bad-signature,verdict=rejected}";
    let accepted = "ephemera_federation_gossip_total{reason=ok,verdict=accepted}";
    assert!(
        wait_until(PROPAGATION, || recorder.get(rejected) >= 1
            && recorder.get(accepted) >= 1)
        .await
    );
    assert!(recorder.get("ephemera_federation_connections_total{event=established}") >= 2);
    assert!(recorder.get("ephemera_federation_published_total{result=ok}") >= 1);
    assert!(
        recorder.get("ephemera_federation_sync_requests_total{direction=outbound,kind=digests}")
            >= 2
    );
    assert!(
        recorder.get("ephemera_federation_sync_requests_total{direction=inbound,kind=digests}")
            >= 2
    );
    assert!(recorder.get("ephemera_federation_sync_rounds_total{result=ok}") >= 2);
    cluster.stop().await;
}

/// A store that takes a while for each relayed upload, one at a time (a slow disk).
struct SlowStore {
    inner: MemoryFederationStore,
    disk: std::sync::Mutex<()>,
}

impl FederationStore for SlowStore {
    fn contains(&self, id: &UploadId) -> Result<bool, StoreError> {
        self.inner.contains(id)
    }
    fn store_relayed(
        &self,
        upload: ephemera_proto::upload::VerifiedUpload,
    ) -> Result<StoreOutcome, StoreError> {
        let _disk = self.disk.lock().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        self.inner.store_relayed(upload)
    }
    fn ids_for_day(
        &self,
        day: DayNumber,
        after: Option<UploadId>,
        limit: usize,
    ) -> Result<Vec<UploadId>, StoreError> {
        self.inner.ids_for_day(day, after, limit)
    }
    fn get(&self, id: &UploadId) -> Result<Option<FederatedReport>, StoreError> {
        self.inner.get(id)
    }
    fn day_digest(&self, day: DayNumber) -> Result<DayDigest, StoreError> {
        self.inner.day_digest(day)
    }
}

/// A burst at one node (issue #16, item 3) reaches a peer whose store is slower than the
/// burst by gossip alone. Before, past 256 messages in flight the rest were ignored, and
/// a verdict given after gossipsub's 2.5 s validation window forwarded nothing; only the
/// next catch-up round (a minute later by default) brought them. Now messages wait their
/// turn, and catch-up, which runs here only on connect (before the burst), fetches nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_reaches_a_slow_peer_by_gossip_alone() {
    const BURST: usize = 2_000; // 4 s of the slow store's time: past the old window
    let factory = UploadFactory::new();
    let config = || test_config(&factory).with_sync_interval(Duration::from_secs(3600));
    let mut origin = LocalNode::start(
        config(),
        NodeIdentity::generate(),
        Arc::new(RecordingStore::new()),
        vec![],
    )
    .await
    .unwrap();
    let recorder = Arc::new(CountingRecorder::default());
    let mut slow_config = config().with_bootstrap_peers(vec![origin.tcp_addr()]);
    slow_config.metrics = Some(MetricsSink(Arc::new(SharedRecorder(recorder.clone()))));
    let slow = Arc::new(SlowStore {
        inner: MemoryFederationStore::new(),
        disk: std::sync::Mutex::new(()),
    });
    let (peer, join) = Federation::spawn(
        slow_config,
        NodeIdentity::generate(),
        slow.clone(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let meshed = wait_until_async(PROPAGATION, || async {
        peer.status().await.is_ok_and(|s| s.mesh_peers > 0)
    })
    .await;
    assert!(meshed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..BURST {
        let upload = factory.upload(3);
        origin.store.store_local(upload.clone());
        origin.handle.publish(upload).await.unwrap();
    }
    let all = wait_until(Duration::from_secs(60), || slow.inner.len() == BURST).await;
    assert!(all, "the slow peer holds {} of {BURST}", slow.inner.len());
    assert_eq!(
        recorder.get("ephemera_federation_gossip_total{reason=overloaded,verdict=ignored}"),
        0
    );
    assert_eq!(
        recorder.get("ephemera_federation_sync_fetched_total{reason=ok,verdict=accepted}"),
        0,
        "catch-up filled a gap gossip left"
    );
    peer.shutdown().await.unwrap();
    join.await.unwrap();
    origin.stop().await;
}

// ---- store failures ---------------------------------------------------------------------

#[test]
fn verdicts_map_to_gossip_acceptance_and_penalties() {
    use libp2p::gossipsub::MessageAcceptance::{Accept, Ignore, Reject};
    // (verdict, acceptance, penalise, refuse, abort): the same on gossip and catch-up.
    let table = [
        (Verdict::Accept, Accept, false, false, false),
        // A relay forwards without storing; nothing against the sender.
        (Verdict::Relay, Accept, false, false, false),
        (Verdict::Reject("bad-signature"), Reject, true, true, false),
        (Verdict::Reject("malformed"), Reject, true, true, false),
        // Partial trust (issue #32, attack 2): another authority's upload is valid where
        // its relay trusts it. Not stored, not forwarded, and never held against the relay.
        (
            Verdict::Ignore("untrusted-authority"),
            Ignore,
            false,
            true,
            false,
        ),
        (Verdict::Ignore("too-old"), Ignore, false, true, false),
        (Verdict::Ignore("duplicate"), Ignore, false, true, false),
        // A revision of a report not held yet: no fault, fetched again in a later round.
        (
            Verdict::Later("original-missing"),
            Ignore,
            false,
            false,
            false,
        ),
        // A store failure: no penalty, not remembered as refused, the round stops.
        (Verdict::StoreFailed, Ignore, false, false, true),
    ];
    for (verdict, acceptance, penalise, refuse, abort) in table {
        let judgement = judge(verdict);
        assert_eq!(judgement.acceptance, acceptance, "{verdict:?}");
        assert_eq!(judgement.penalise, penalise, "{verdict:?}");
        assert_eq!(judgement.refuse, refuse, "{verdict:?}");
        assert_eq!(judgement.abort, abort, "{verdict:?}");
    }
}

#[test]
fn store_failures_are_neither_blamed_nor_taken_as_absent() {
    let factory = UploadFactory::new();
    let verifier = verifier(&factory);
    let store = TestStore::failing();
    let now = SystemClock.now();
    let topic = topic_of(&factory);

    // Gossip: a valid upload the store cannot check is ignored, not stored, not rejected.
    let upload = factory.upload(2);
    let bytes = wire::encode(upload.upload());
    assert_eq!(
        verifier.check_gossip(&store, &message_id(&bytes), &bytes, topic, now),
        Verdict::StoreFailed
    );
    assert!(!store.honest.holds(&upload.id()), "not stored blind");

    // Catch-up answers: an error, never an empty answer.
    store.honest.store_local(upload.clone());
    let today = now.day();
    let requests = [
        SyncRequest::Digests {
            from: today,
            to: today,
        },
        SyncRequest::Ids {
            day: today,
            after: None,
            limit: 10,
        },
        SyncRequest::Fetch {
            ids: vec![upload.id()],
        },
    ];
    for request in requests {
        let kind = request.kind();
        assert!(answer(&store, request, today, 14).is_err(), "{kind}");
    }
    store.set_failing(false);
    assert!(matches!(
        answer(&store, SyncRequest::Fetch { ids: vec![upload.id()] }, today, 14),
        Ok(SyncResponse::Uploads { uploads }) if uploads.len() == 1
    ));
}

/// Node B's store cannot be read: gossip and catch-up from A are ignored and counted, B
/// stores nothing it could not check, neither side bans or penalises the other, and once the
/// store reads again B catches up with everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_store_fails_bans_no_one_and_catches_up_after() {
    init_tracing();
    let recorder = recorder();
    let factory = UploadFactory::new();
    let a = start_node(test_config(&factory), vec![]).await;
    let early = factory.upload(2);
    a.store.store_local(early.clone());

    let b_store = Arc::new(TestStore::failing());
    let (b, b_join) = Federation::spawn(
        test_config(&factory),
        NodeIdentity::generate(),
        b_store.clone(),
        Arc::new(SystemClock),
    )
    .unwrap();
    b.dial(a.tcp_addr()).await.unwrap();
    let mut meshed = false;
    let deadline = Instant::now() + PROPAGATION;
    while !meshed && Instant::now() < deadline {
        meshed = a.handle.status().await.unwrap().mesh_peers > 0
            && b.status().await.unwrap().mesh_peers > 0;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(meshed, "A and B meshed");
    let late = factory.upload(2);
    a.store.store_local(late.clone());
    a.handle.publish(late.clone()).await.unwrap();

    let counted = |path: &str| {
        recorder.get(&format!(
            "ephemera_federation_store_errors_total{{path={path}}}"
        ))
    };
    assert!(
        wait_until(PROPAGATION, || counted("gossip") >= 1
            && counted("catch-up") >= 1
            && counted("serve") >= 1)
        .await,
        "every failure path counted"
    );
    assert!(recorder.get("ephemera_federation_sync_rounds_total{result=store-error}") >= 1);
    assert!(
        recorder.get("ephemera_federation_gossip_total{reason=store-error,verdict=ignored}") >= 1
    );
    // Let a few more catch-up rounds (every 2 s) fail before looking.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Nothing taken as missing and fetched, nothing stored from gossip unchecked.
    assert!(b_store.honest.memory().is_empty(), "B stored nothing blind");
    let (a_id, b_id) = (a.handle.peer_id(), b.peer_id());
    let a_status = a.handle.status().await.unwrap();
    let b_status = b.status().await.unwrap();
    assert!(a_status.connected_peers.contains(&b_id), "still connected");
    assert!(!a_status.banned_peers.contains(&b_id), "A did not ban B");
    assert!(!b_status.banned_peers.contains(&a_id), "B did not ban A");
    assert!(
        a_status.score_of(&b_id).is_none_or(|s| s >= 0.0),
        "A did not penalise B"
    );
    assert!(
        b_status.score_of(&a_id).is_none_or(|s| s >= 0.0),
        "B did not penalise A"
    );

    // The disk recovers: the next round brings both uploads.
    b_store.set_failing(false);
    assert!(
        wait_until(PROPAGATION, || b_store.honest.holds(&early.id())
            && b_store.honest.holds(&late.id()))
        .await,
        "B caught up once its store read again"
    );
    let mut a = a;
    a.stop().await;
    b.shutdown().await.unwrap();
    b_join.await.unwrap();
}

#[test]
fn a_transport_error_names_its_cause() {
    // libp2p prints nothing for a transport's own error; the cause is in its source.
    let in_use = std::io::Error::from(std::io::ErrorKind::AddrInUse);
    let error = libp2p::TransportError::<std::io::Error>::Other(in_use);
    assert_eq!(error.to_string(), "", "why the cause chain is walked");
    let message =
        FederationError::transport("listening on /ip4/127.0.0.1/tcp/4001", &error).to_string();
    assert_eq!(
        message,
        format!(
            "federation transport setup failed: listening on /ip4/127.0.0.1/tcp/4001: {}",
            std::io::Error::from(std::io::ErrorKind::AddrInUse)
        )
    );
}

// ---- sunset orders from a hostile peer ------------------------------------------------

/// A witness that holds no order and keeps what peers hand it.
#[derive(Default)]
struct KeepingWitness(std::sync::Mutex<Vec<Vec<u8>>>);

impl SunsetWitness for KeepingWitness {
    fn held(&self) -> Option<Vec<u8>> {
        None
    }

    fn offered(&self, frame: Vec<u8>) -> futures::future::BoxFuture<'static, ()> {
        self.0.lock().unwrap().push(frame);
        Box::pin(async {})
    }
}

/// An attacker's side of a request-response protocol (`/ephemera/sunset/1`,
/// `/ephemera/venue-releases/1`): requests written exactly as given (length prefix
/// included), answers read as frames; it answers nothing.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Protocol = libp2p::StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &Self::Protocol, _: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    async fn read_response<T>(&mut self, _: &Self::Protocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        frame::read_frame(io, 1 << 16).await
    }

    async fn write_request<T>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        raw: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        use futures::AsyncWriteExt;
        io.write_all(&raw).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &Self::Protocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        // The attacker only asks.
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

type RawAsker = libp2p::request_response::Behaviour<RawCodec>;

/// Sends `raw` to `peer` and drives the swarm until the exchange ends; true if answered.
async fn send_raw(swarm: &mut libp2p::Swarm<RawAsker>, peer: PeerId, raw: Vec<u8>) -> bool {
    use futures::StreamExt;
    use libp2p::request_response::Event;
    let id = swarm.behaviour_mut().send_request(&peer, raw);
    let ended = tokio::time::timeout(PROPAGATION, async {
        loop {
            if let libp2p::swarm::SwarmEvent::Behaviour(event) = swarm.select_next_some().await {
                match event {
                    Event::Message { message, .. } => {
                        if let libp2p::request_response::Message::Response { request_id, .. } =
                            message
                            && request_id == id
                        {
                            return true;
                        }
                    }
                    Event::OutboundFailure { request_id, .. } if request_id == id => return false,
                    _ => {}
                }
            }
        }
    });
    ended.await.unwrap_or(false)
}

/// An attacker speaking `protocol` raw, connected to `node`.
async fn attacker(protocol: libp2p::StreamProtocol, node: &LocalNode) -> libp2p::Swarm<RawAsker> {
    use futures::StreamExt;
    let mut attacker = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            RawAsker::new(
                [(protocol, libp2p::request_response::ProtocolSupport::Full)],
                libp2p::request_response::Config::default(),
            )
        })
        .unwrap()
        .build();
    attacker.dial(node.tcp_addr()).unwrap();
    let target = node.handle.peer_id();
    while !attacker.is_connected(&target) {
        tokio::time::timeout(PROPAGATION, attacker.select_next_some())
            .await
            .expect("connects");
    }
    attacker
}

fn with_length(len: usize, body: &[u8]) -> Vec<u8> {
    let mut raw = u32::try_from(len).unwrap().to_be_bytes().to_vec();
    raw.extend_from_slice(body);
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_junk_or_oversized_sunset_frames_cost_their_sender() {
    use ephemera_proto::sunset::{CommitteeId, SignedSunsetOrder, SunsetOrder, SunsetScope};
    let recorder = recorder();
    let count = |reason: &str| {
        recorder.get(&format!(
            "ephemera_federation_peers_penalised_total{{reason={reason}}}"
        ))
    };
    let witness = Arc::new(KeepingWitness::default());
    let mut config = test_config(&UploadFactory::new());
    config.sunset = Some(SunsetSink(witness.clone()));
    let mut node = start_node(config, vec![]).await;

    let mut attacker = attacker(SUNSET_PROTOCOL, &node).await;
    let target = node.handle.peer_id();

    // An order frame this node cannot check (no approvals, unknown committee): handed to the
    // witness, answered with "none held", no penalty.
    let order = |reason: usize| {
        SignedSunsetOrder::draft(SunsetOrder {
            federation: "elsewhere".into(),
            committee: CommitteeId([7; 32]),
            scope: SunsetScope::Federation,
            issued_at: ephemera_proto::UnixTime(1),
            effective_at: ephemera_proto::UnixTime(2),
            reason: reason.to_string(),
        })
        .to_bytes()
    };
    let first = order(0);
    let framed = with_length(first.len(), &first);
    assert!(send_raw(&mut attacker, target, framed).await);
    assert!(wait_until(PROPAGATION, || witness.0.lock().unwrap().contains(&first)).await);
    assert_eq!(count("sunset-malformed") + count("sunset-oversized"), 0);

    // A flood of such orders: a burst of 8 checks (the first included), the rest dropped
    // unchecked, still without penalty.
    for i in 1..20 {
        let next = order(i);
        assert!(send_raw(&mut attacker, target, with_length(next.len(), &next)).await);
    }
    let dropped = "ephemera_federation_sunset_dropped_total{reason=peer-budget}";
    assert!(wait_until(PROPAGATION, || recorder.get(dropped) >= 10).await);
    let checked = witness.0.lock().unwrap().len();
    assert!((8..=9).contains(&checked), "{checked} orders checked");
    assert_eq!(count("sunset-malformed") + count("sunset-oversized"), 0);

    // Bytes that are no order: answered, dropped, penalised.
    let junk = b"no sunset order".to_vec();
    assert!(send_raw(&mut attacker, target, with_length(junk.len(), &junk)).await);
    assert!(wait_until(PROPAGATION, || count("sunset-malformed") == 1).await);

    // A length over the cap: refused before the body is read, penalised.
    let over = with_length(MAX_SUNSET_FRAME + 1, &[0; 64]);
    assert!(!send_raw(&mut attacker, target, over).await);
    assert!(wait_until(PROPAGATION, || count("sunset-oversized") == 1).await);
    assert_eq!(
        witness.0.lock().unwrap().len(),
        checked,
        "only orders reach the node"
    );
    node.stop().await;
}

/// A keeper holding nothing, keeping what peers send.
#[derive(Default)]
struct KeepingReleases(std::sync::Mutex<Vec<Vec<u8>>>);

impl ReleaseKeeper for KeepingReleases {
    fn held(&self) -> futures::future::BoxFuture<'static, Vec<ephemera_proto::venue::ReleaseId>> {
        Box::pin(async { Vec::new() })
    }

    fn frames(
        &self,
        _: Vec<ephemera_proto::venue::ReleaseId>,
    ) -> futures::future::BoxFuture<'static, Vec<Vec<u8>>> {
        Box::pin(async { Vec::new() })
    }

    fn offered(&self, frame: Vec<u8>) -> futures::future::BoxFuture<'static, ReleaseAdmission> {
        self.0.lock().unwrap().push(frame);
        Box::pin(async { ReleaseAdmission::Stored })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_misshapen_or_oversized_release_asks_cost_their_sender() {
    let recorder = recorder();
    let count = |reason: &str| {
        recorder.get(&format!(
            "ephemera_federation_peers_penalised_total{{reason={reason}}}"
        ))
    };
    let mut config = test_config(&UploadFactory::new());
    config.venue_releases = Some(ReleaseSink(Arc::new(KeepingReleases::default())));
    let mut node = start_node(config, vec![]).await;
    let mut attacker = attacker(RELEASES_PROTOCOL, &node).await;
    let target = node.handle.peer_id();

    // A well-formed ask, of ids this node lacks: answered (with nothing held), no penalty.
    let ids = [[1u8; 32], [2u8; 32]].concat();
    assert!(send_raw(&mut attacker, target, with_length(ids.len(), &ids)).await);
    assert_eq!(count("venue-release-ask-malformed"), 0);

    // Ids that are not whole: no answer, penalised.
    assert!(!send_raw(&mut attacker, target, with_length(33, &[0; 33])).await);
    assert!(wait_until(PROPAGATION, || count("venue-release-ask-malformed") == 1).await);

    // A length over the cap: refused before the body is read, penalised.
    let over = with_length(MAX_HAVE_IDS * 32 + 32, &[0; 64]);
    assert!(!send_raw(&mut attacker, target, over).await);
    assert!(wait_until(PROPAGATION, || count("venue-release-ask-malformed") == 2).await);
    node.stop().await;
}
