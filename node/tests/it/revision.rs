//! Revisions only by the phone that uploaded (protocol version 2, `docs/PROTOCOL.md` §5.4):
//! whoever replays an upload's bytes gets the first answer, which grants nothing, and cannot
//! revise or revoke the report; the phone that uploaded still can.

use ephemera_node::clock::ManualClock;
use ephemera_proto::api::UploadResponse;
use ephemera_proto::revision::{HmacBinding, RevisionSecret};
use ephemera_proto::upload::{UploadBody, UploadRequest};
use ephemera_proto::wire;

use crate::util::*;

fn token_of(response: &Response) -> String {
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    serde_json::from_slice::<UploadResponse>(&response.body)
        .unwrap()
        .revision_token
}

/// The attack of issue 24: a peer or proxy that holds the victim's upload replays it, then
/// tries `likely` → `confirmed` and a revocation under certificates of the same authority
/// (codes of its own); every try fails, and the victim's own revision succeeds. Since the
/// certified HMAC covers the revision key (`docs/PROTOCOL.md` §4.2), the upload cannot be
/// sent with another key, nor as version 1, at any node.
#[tokio::test]
async fn a_replayed_upload_cannot_revise_and_the_victims_signed_revision_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let session = node.login().await;
    let contents = pet_contents(3, T0.day());
    let victim = RevisionSecret::generate(&mut rand::rng());
    let first = node
        .certified(
            &session,
            "likely",
            &contents,
            HmacBinding::Upload(victim.key()),
        )
        .await;
    let original = first.certificate.certificate.id;
    let bytes = wire::encode(&UploadRequest::real(first.clone(), victim.key()));
    assert_eq!(bytes[0], wire::WIRE_VERSION_2);
    let answer = node
        .post_raw("/v1/uploads", "application/octet-stream", &bytes)
        .await;
    assert_eq!(token_of(&answer), "", "a version 2 answer carries no token");

    // Replays: the bytes as they were get the first answer. Under a version 1 frame, or
    // under the attacker's own revision key, the certificate does not fit: refused.
    let replay = node
        .post_raw("/v1/uploads", "application/octet-stream", &bytes)
        .await;
    assert_eq!((replay.status, &replay.body), (200, &answer.body));
    node.upload_body(UploadBody::RealV1(first.clone()))
        .await
        .assert_error(400, "hmac-mismatch");
    let attacker = RevisionSecret::generate(&mut rand::rng());
    node.upload_body(UploadBody::Real {
        upload: first.clone(),
        revision_key: attacker.key(),
    })
    .await
    .assert_error(400, "hmac-mismatch");

    // The attacker's revisions, under the same authority: refused.
    for test_type in ["negative", "confirmed"] {
        // Certified for its own key: the node binds the victim's.
        let own = node
            .certified(
                &session,
                test_type,
                &contents,
                HmacBinding::Revision(attacker.key()),
            )
            .await;
        node.upload_body(UploadBody::Revision {
            signature: attacker.sign(&original, &own.certificate),
            upload: own,
            revises: original,
        })
        .await
        .assert_error(400, "hmac-mismatch");
        // Certified for the victim's key (it is public), signed by the attacker, or with a
        // signature of the victim over another certificate.
        let revision = node
            .certified(
                &session,
                test_type,
                &contents,
                HmacBinding::Revision(victim.key()),
            )
            .await;
        for signature in [
            attacker.sign(&original, &revision.certificate),
            victim.sign(&original, &first.certificate),
        ] {
            node.upload_body(UploadBody::Revision {
                upload: revision.clone(),
                revises: original,
                signature,
            })
            .await
            .assert_error(400, "invalid-revision-signature");
        }
        let unbound = node
            .certified(&session, test_type, &contents, HmacBinding::Unbound)
            .await;
        node.upload_body(UploadBody::RevisionV1 {
            upload: unbound,
            revision_token: vec![0; 32],
        })
        .await
        .assert_error(400, "invalid-revision-token");
    }

    // The victim's own revision goes through, and its retry gets the same answer.
    let confirmed = node
        .certified(
            &session,
            "confirmed",
            &contents,
            HmacBinding::Revision(victim.key()),
        )
        .await;
    let revision = wire::encode(&UploadRequest::revision(confirmed, original, &victim));
    let revised = node
        .post_raw("/v1/uploads", "application/octet-stream", &revision)
        .await;
    assert_eq!(token_of(&revised), "");
    let retried = node
        .post_raw("/v1/uploads", "application/octet-stream", &revision)
        .await;
    assert_eq!((retried.status, &retried.body), (200, &revised.body));
    // Revised once: not again, not even by the victim.
    let negative = node
        .certified(
            &session,
            "negative",
            &contents,
            HmacBinding::Revision(victim.key()),
        )
        .await;
    node.upload_body(UploadBody::Revision {
        signature: victim.sign(&original, &negative.certificate),
        upload: negative,
        revises: original,
    })
    .await
    .assert_error(400, "invalid-revision-signature");
    node.stop().await;
}

/// The transition: a version 1 upload keeps its token rule and cannot be revised by a
/// signature (it carries no key); a version 2 decoy is answered as a version 2 upload is.
#[tokio::test]
async fn version_1_uploads_are_revised_by_token_only_and_decoys_answer_by_version() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let session = node.login().await;
    let contents = pet_contents(2, T0.day());
    let (token, first) = node.report(&session, "likely", contents.clone()).await;
    assert_eq!(token.len(), 64, "a version 1 upload gets its token");
    let original = first.certificate.certificate.id;
    let anyone = RevisionSecret::generate(&mut rand::rng());
    let revoke = node
        .certified(&session, "negative", &contents, HmacBinding::Unbound)
        .await;
    node.upload_body(UploadBody::Revision {
        signature: anyone.sign(&original, &revoke.certificate),
        upload: revoke.clone(),
        revises: original,
    })
    .await
    .assert_error(400, "invalid-revision-signature");
    let revoked = node
        .upload_body(UploadBody::RevisionV1 {
            upload: revoke,
            revision_token: hex::decode(&token).unwrap(),
        })
        .await;
    assert_eq!(token_of(&revoked).len(), 64);

    let decoy = node
        .post_raw(
            "/v1/uploads",
            "application/octet-stream",
            &wire::encode(&UploadRequest::decoy(4096)),
        )
        .await;
    assert_eq!(token_of(&decoy), "");
    let mut v1_decoy = wire::encode(&UploadRequest::decoy(4096));
    v1_decoy[0] = wire::WIRE_VERSION;
    let decoy = node
        .post_raw("/v1/uploads", "application/octet-stream", &v1_decoy)
        .await;
    assert_eq!(token_of(&decoy).len(), 64);
    node.stop().await;
}
