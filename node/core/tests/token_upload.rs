//! Token uploads through the real node core (`docs/PROTOCOL.md` §4.4): a phone verifies
//! blindly, uploads later with its token, and revises with a second token; the node
//! certifies each in its authority's name, and a peer that trusts the authority stores and
//! revises the report from the relay alone, as it does for certificate uploads.

use ephemera_node_core::authority::CodeGrant;
use ephemera_node_core::federation_intake::RelayAdmission;
use ephemera_node_core::intake::{Admission, IntakeError, Settled};
use ephemera_node_core::store::{CertificateState, CommitOutcome, MemoryReportStore, ReportStore};
use ephemera_node_core::token_keys::TokenKeyring;
use ephemera_node_core::{NodeCore, NodeKeys, Policy};
use ephemera_proto::auth::{CertificateId, ExpiryPolicy, UploadCode};
use ephemera_proto::federated::{self, FederatedReport};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::ReportLimits;
use ephemera_proto::revision::{Binding, HmacBinding, RevisionSecret};
use ephemera_proto::token::{
    TokenError, TokenExchange, TokenKeys, TokenStatement, TokenUpload, UploadToken,
};
use ephemera_proto::upload::{UploadBody, UploadRequest};
use ephemera_proto::{DayNumber, PublishedToken, ReportContents, ReportType, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const DAY: DayNumber = DayNumber(19_675);

fn noon(day: DayNumber) -> UnixTime {
    day.start().plus_seconds(43_200)
}

/// The authority's node with today's token keys, and the keys as a phone verifies them.
fn authority(rng: &mut ChaCha20Rng) -> (NodeCore, TokenKeys) {
    let core = NodeCore::new(Policy::default(), NodeKeys::generate(rng), rng);
    let keys = TokenKeyring::generate_epoch(DAY, rng).unwrap();
    core.install_token_epoch(DAY, keys, DAY.start()).unwrap();
    let keys = core
        .token_key_set(DAY.start())
        .verify(core.trusted(), &core.policy().audience)
        .unwrap();
    (core, keys)
}

/// A code of `test_type`, exchanged at noon for a token over `contents` bound to `binding`.
fn token(
    core: &NodeCore,
    store: &MemoryReportStore,
    keys: &TokenKeys,
    test_type: ReportType,
    contents: &ReportContents,
    binding: HmacBinding,
    rng: &mut ChaCha20Rng,
) -> UploadToken {
    let grant = CodeGrant {
        test_type,
        symptom_onset: None,
        issued_by_key: None,
    };
    let code: UploadCode = core
        .issue_codes(store, grant, 1, noon(DAY).minus_seconds(600), rng)
        .unwrap()
        .codes
        .remove(0);
    let statement = TokenStatement {
        audience: &core.policy().audience,
        contents,
        binding,
    };
    let (exchange, request) = TokenExchange::prepare(keys, DAY, &statement, &code, rng).unwrap();
    let answer = core
        .redeem_code_for_token(store, &request, noon(DAY), rng)
        .unwrap();
    exchange.finish(keys, &answer).unwrap()
}

/// Admits `request` at `now` and applies its commit; returns what to gossip.
fn admit(
    core: &NodeCore,
    store: &MemoryReportStore,
    request: UploadRequest,
    now: UnixTime,
) -> Result<ephemera_proto::upload::VerifiedUpload, IntakeError> {
    match core.admit_upload(store, request, now, true)? {
        Admission::Commit(plan) => {
            store.commit_upload(&plan.commit).unwrap();
            Ok(plan.gossip.expect("kept for gossip"))
        }
        other => panic!("not a commit: {other:?}"),
    }
}

/// What a peer does with a gossiped report: decode its frame, verify it as relayed (its
/// certificate, and a revision's signature under its key), then admit it.
fn relay(
    peer: &NodeCore,
    store: &MemoryReportStore,
    upload: ephemera_proto::upload::VerifiedUpload,
) {
    let now = noon(DAY.plus(1));
    let frame = federated::encode(&FederatedReport::from(upload));
    let report = federated::decode(&frame).unwrap();
    let upload = report
        .upload
        .verify_bound(
            report.binding,
            peer.trusted(),
            now,
            ExpiryPolicy::Relayed { retention_days: 14 },
            &ReportLimits::default(),
        )
        .unwrap();
    match peer.admit_relayed(store, upload, now).unwrap() {
        RelayAdmission::Commit(commit) => {
            store.commit_upload(&commit).unwrap();
        }
        other => panic!("the peer refused the relay: {other:?}"),
    }
}

#[test]
fn a_token_upload_is_certified_at_its_node_relayed_and_revised_by_its_phone_only() {
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let (core, keys) = authority(&mut rng);
    let store = MemoryReportStore::new();
    let peer_policy = Policy {
        trusted_authorities: vec![core.keys().authority.public_key()],
        ..Policy::default()
    };
    let peer = NodeCore::new(peer_policy, NodeKeys::generate(&mut rng), &mut rng);
    let peer_store = MemoryReportStore::new();

    let contents = ReportContents::Pet(
        (0..3u8)
            .map(|i| PublishedToken {
                day: DAY.minus(1),
                token: EncounterToken([i + 1; 16]),
            })
            .collect(),
    );
    let phone = RevisionSecret::generate(&mut rng);
    let first = TokenUpload {
        contents: contents.clone(),
        token: token(
            &core,
            &store,
            &keys,
            ReportType::ConfirmedClinicalDiagnosis,
            &contents,
            HmacBinding::Upload(phone.key()),
            &mut rng,
        ),
    };
    // The phone uploads the next day (its random delay).
    let uploaded_at = noon(DAY.plus(1));
    let request = UploadRequest::tokened(first.clone(), phone.key());
    let gossip = admit(&core, &store, request.clone(), uploaded_at).unwrap();
    let certificate = &gossip.upload().certificate.certificate;
    assert_eq!(certificate.id, first.certificate_id());
    assert_eq!(
        certificate.test_type,
        ReportType::ConfirmedClinicalDiagnosis
    );
    assert_eq!(
        (certificate.issued_at, certificate.symptom_onset),
        (DAY.start(), None),
        "the certificate states the token's day, not the upload's time"
    );
    // A retry of the same bytes is certified to the same upload, so it is answered as a
    // replay and stored once: the token is spent.
    let Admission::Commit(retry) = core
        .admit_upload(&store, request, uploaded_at, false)
        .unwrap()
    else {
        panic!("a retry is planned like the first request")
    };
    let outcome = store.commit_upload(&retry.commit).unwrap();
    assert_eq!(outcome, CommitOutcome::CertificateUsed);
    assert_eq!(
        core.settle_upload(&store, &retry.receipt, outcome).unwrap(),
        Settled::Replayed(None)
    );
    // The token under another revision key (a thief's) is refused: it commits to the key.
    let thief = RevisionSecret::generate(&mut rng);
    assert!(matches!(
        core.admit_upload(
            &store,
            UploadRequest::tokened(first.clone(), thief.key()),
            uploaded_at,
            false
        ),
        Err(IntakeError::Token(TokenError::BadSignature))
    ));
    // Another authority's node does not hold the token's key.
    assert!(matches!(
        peer.admit_upload(
            &peer_store,
            UploadRequest::tokened(first.clone(), phone.key()),
            uploaded_at,
            false
        ),
        Err(IntakeError::Token(TokenError::UnknownKey))
    ));
    // Two days on, the token has expired.
    assert!(matches!(
        core.admit_upload(
            &MemoryReportStore::new(),
            UploadRequest::tokened(first.clone(), phone.key()),
            noon(DAY.plus(2)),
            false
        ),
        Err(IntakeError::Token(TokenError::Expired { .. }))
    ));

    // The peer stores the relayed report (it checks the certificate, as for any upload).
    relay(&peer, &peer_store, gossip);
    let mark = peer_store
        .certificate_use(&first.certificate_id())
        .unwrap()
        .unwrap();
    assert_eq!(
        (mark.state, mark.binding),
        (CertificateState::Relayed, Binding::Upload(phone.key()))
    );

    // `likely` → `confirmed`, with a second code and token bound to the revision role.
    let confirmed = TokenUpload {
        contents: contents.clone(),
        token: token(
            &core,
            &store,
            &keys,
            ReportType::ConfirmedTest,
            &contents,
            HmacBinding::Revision(phone.key()),
            &mut rng,
        ),
    };
    let revises = first.certificate_id();
    // The thief cannot sign it; a signature over another original does not hold either.
    for (signer, original) in [(&thief, revises), (&phone, CertificateId([0; 16]))] {
        let forged = UploadRequest::padded(UploadBody::TokenRevision {
            upload: confirmed.clone(),
            revises,
            signature: signer.sign_token_revision(&original, &confirmed.certificate_id()),
        });
        assert!(matches!(
            core.admit_upload(&store, forged, uploaded_at, false),
            Err(IntakeError::InvalidRevisionSignature)
        ));
    }
    let revision = UploadRequest::token_revision(confirmed.clone(), revises, &phone);
    let gossip = admit(&core, &store, revision, uploaded_at).unwrap();
    assert_eq!(
        gossip.upload().certificate.certificate.test_type,
        ReportType::ConfirmedTest
    );
    assert_eq!(
        store.certificate_use(&revises).unwrap().unwrap().state,
        CertificateState::Revised
    );
    // The peer applies the revision from the relay alone: its binding carries the phone's
    // signature over the certificate id, which the peer checks under the original's key.
    relay(&peer, &peer_store, gossip.clone());
    assert_eq!(
        peer_store.certificate_use(&revises).unwrap().unwrap().state,
        CertificateState::Revised
    );
    let stored = peer_store
        .certificate_use(&confirmed.certificate_id())
        .unwrap()
        .unwrap();
    assert!(matches!(stored.binding, Binding::TokenRevision { .. }));
    // A relay whose signature was altered is refused before anything is planned.
    let mut altered = gossip.upload().clone();
    altered.certificate.certificate.id = CertificateId([1; 16]);
    let binding = *gossip.binding();
    assert!(!binding.signature_holds(&altered.certificate));
}
