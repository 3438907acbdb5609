//! No client address, code, password or bearer token in the logs or on disk.

use ephemera_node::clock::ManualClock;
use ephemera_proto::upload::UploadBody;

use crate::util::*;

#[tokio::test]
async fn logs_and_storage_hold_no_codes_tokens_or_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start(dir.path(), ManualClock::new(T0)).await;
    let (_, password) = node.case_worker.clone().unwrap();
    let session = node.login().await;
    let issued = node.issue(&session, "confirmed", None, 2).await;
    let code = issued.codes[0].code.clone();
    let contents = pet_contents(3, T0.day());
    let hmac_key = ephemera_proto::auth::ReportHmacKey::generate(&mut rand::rng());
    let certificate = node.certify(&code, &contents, &hmac_key).await.unwrap();
    let upload = ephemera_proto::upload::SignedUpload {
        contents,
        certificate,
        hmac_key,
    };
    let stored_key = upload.hmac_key.0.to_vec();
    let response = node.upload_body(UploadBody::Real(upload.clone())).await;
    assert_eq!(response.status, 200);
    let revision_token = response.json()["revision_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A retry answers the same token again; failures log too: make sure both stay clean.
    let replay = node.upload_body(UploadBody::Real(upload.clone())).await;
    assert_eq!(replay.json()["revision_token"], revision_token.as_str());
    let mut forged = upload;
    forged.hmac_key.0[0] ^= 1;
    node.upload_body(UploadBody::Real(forged))
        .await
        .assert_error(400, "hmac-mismatch");
    node.post_json(
        "/v1/session",
        &[],
        &serde_json::json!({"name": "caseworker", "password": "guess"}),
    )
    .await
    .assert_error(401, "invalid-credentials");
    node.next_batches().await;
    node.node.purge().unwrap();
    node.stop().await;

    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("code", code.as_bytes().to_vec()),
        ("code without dashes", code.replace('-', "").into_bytes()),
        (
            "second code",
            issued.codes[1].code.replace('-', "").into_bytes(),
        ),
        ("password", password.clone().into_bytes()),
        ("session token", session.clone().into_bytes()),
        ("session token bytes", hex::decode(&session).unwrap()),
        ("revision token", revision_token.clone().into_bytes()),
        (
            "revision token bytes",
            hex::decode(&revision_token).unwrap(),
        ),
        ("loopback address", b"127.0.0.1".to_vec()),
    ];
    let logs = captured_logs();
    assert!(
        logs.contains("upload rejected"),
        "the capture works: {logs}"
    );
    let disk = read_tree(dir.path());
    assert!(
        contains(&disk, &stored_key),
        "the scan sees the database: the stored upload is found"
    );
    for (what, secret) in &secrets {
        assert!(!contains(logs.as_bytes(), secret), "{what} in the logs");
        assert!(!contains(&disk, secret), "{what} on disk");
    }
}
