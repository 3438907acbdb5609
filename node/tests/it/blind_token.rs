//! Blind upload tokens over real HTTP (`docs/PROTOCOL.md` §4.4, issue 31 item 1): the
//! phone's sealed `POST /v2/verify` gets a blind signature; a day later it uploads with the
//! token; the node publishes the report. A decoy and a refused verify look like the real
//! one to a proxy, and neither the verify nor the upload leaves the token's bytes behind.

use ephemera_node::clock::ManualClock;
use ephemera_proto::auth::TrustedAuthorities;
use ephemera_proto::revision::{HmacBinding, RevisionSecret};
use ephemera_proto::sealed::{self, SealedRoute, SealingKeyAnnouncement, SealingPublicKey};
use ephemera_proto::signing::TrustedKeys;
use ephemera_proto::token::{
    SignedTokenKeySet, TokenExchange, TokenKeys, TokenStatement, TokenUpload, TokenVerifyRequest,
    TokenVerifyResponse,
};
use ephemera_proto::upload::UploadRequest;
use ephemera_proto::{UnixTime, wire};

use crate::util::*;

/// A sealed exchange on `route`: (proxy-visible request and answer lengths, outer status,
/// inner status, inner body).
pub(crate) async fn sealed_post(
    node: &TestNode,
    key: SealingPublicKey,
    route: SealedRoute,
    inner: &[u8],
) -> (usize, usize, u16, u16, Vec<u8>) {
    let (body, opener) = key.seal_request(route, inner, &mut rand::rng()).unwrap();
    let response = node
        .post_raw(route.path(), sealed::CONTENT_TYPE, &body)
        .await;
    let opened = opener.open(&response.body).unwrap();
    (
        body.len(),
        response.body.len(),
        response.status,
        opened.status,
        opened.body,
    )
}

/// A node with blind token keys, holding today's.
pub(crate) async fn blind_token_node(dir: &std::path::Path) -> TestNode {
    let mut config = test_config(dir);
    config.authority.blind_token_keys = true;
    let node = TestNode::start_with(config, ManualClock::new(T0)).await;
    node.node.ensure_token_keys().await.unwrap();
    node
}

/// A sealed `POST /v2/verify` of `request`.
pub(crate) async fn sealed_token_verify(
    node: &TestNode,
    key: SealingPublicKey,
    request: &TokenVerifyRequest,
) -> (usize, usize, u16, u16, Vec<u8>) {
    sealed_post(
        node,
        key,
        SealedRoute::TokenVerify,
        &request.to_padded_json(),
    )
    .await
}

pub(crate) async fn sealing_key(node: &TestNode) -> SealingPublicKey {
    let announcement: SealingKeyAnnouncement =
        serde_json::from_slice(&node.get("/v1/sealing-key").await.body).unwrap();
    let trusted = TrustedKeys::new().with(node.node.keys().batch.public_key());
    announcement.verify(&trusted).unwrap()
}

/// The node's token keys as a phone takes them: signed by the authority it trusts, for its
/// federation.
pub(crate) async fn token_keys(node: &TestNode) -> TokenKeys {
    let response = node.get("/v2/token-keys").await;
    assert_eq!(response.status, 200);
    let set: SignedTokenKeySet = wire::decode(&response.body).unwrap();
    let trusted = TrustedAuthorities::new().with(node.node.keys().authority.public_key());
    set.verify(&trusted, &node.node.core().policy().audience)
        .unwrap()
}

/// A phone's blind verify of `contents` under `keys`, with a code a case worker of `node`
/// issued: the phone's revision secret, its exchange and its request.
pub(crate) async fn prepare_token_verify(
    node: &TestNode,
    keys: &TokenKeys,
    contents: &ephemera_proto::ReportContents,
) -> (RevisionSecret, TokenExchange, TokenVerifyRequest) {
    let session = node.login().await;
    let code = node.one_code(&session).await;
    let phone = RevisionSecret::generate(&mut rand::rng());
    let audience = node.node.core().policy().audience;
    let statement = TokenStatement {
        audience: &audience,
        contents,
        binding: HmacBinding::Upload(phone.key()),
    };
    let parsed = ephemera_proto::auth::UploadCode::parse(&code).unwrap();
    let (exchange, request) =
        TokenExchange::prepare(keys, T0.day(), &statement, &parsed, &mut rand::rng()).unwrap();
    (phone, exchange, request)
}

#[tokio::test]
async fn a_phone_verifies_blindly_uploads_a_day_later_and_its_report_is_published() {
    let dir = tempfile::tempdir().unwrap();
    let node = blind_token_node(dir.path()).await;
    let seal = sealing_key(&node).await;
    let keys = token_keys(&node).await;
    let contents = pet_contents(3, T0.day());
    let (phone, exchange, request) = prepare_token_verify(&node, &keys, &contents).await;

    // Not sealed: refused before anything is read.
    node.post_raw("/v2/verify", "application/json", &request.to_padded_json())
        .await
        .assert_error(415, "unsupported-media-type");
    // A request for yesterday's keys (one message short): refused inside the seal with
    // nothing spent.
    let mut stale = request.clone();
    stale.blinded.pop();
    let refused = sealed_token_verify(&node, seal, &stale).await;
    assert_eq!(refused.3, 409, "{}", String::from_utf8_lossy(&refused.4));
    assert!(String::from_utf8_lossy(&refused.4).contains("stale-token-keys"));

    let real = sealed_token_verify(&node, seal, &request).await;
    assert_eq!(real.3, 200, "{}", String::from_utf8_lossy(&real.4));
    let modulus_len = keys.get(&keys_first_id(&request)).unwrap().modulus_len();
    let decoy = TokenVerifyRequest::decoy(request.blinded.len(), modulus_len, &mut rand::rng());
    let decoy = sealed_token_verify(&node, seal, &decoy).await;
    assert_eq!(decoy.3, 200);
    // The code is spent now: a second try is refused, inside the seal.
    let spent = sealed_token_verify(&node, seal, &request).await;
    assert_eq!(spent.3, 400);
    // A proxy sees one request size, one answer size and 200 for all four.
    for seen in [&refused, &decoy, &spent] {
        assert_eq!((seen.0, seen.1, seen.2), (real.0, real.1, real.2));
    }
    assert_eq!(real.1, SealedRoute::TokenVerify.sealed_response_size());

    let answer: TokenVerifyResponse = serde_json::from_slice(&real.4).unwrap();
    let token = exchange.finish(&keys, &answer).unwrap();
    // The phone waits for its random instant of the next day, then uploads (sealed).
    node.clock
        .set(UnixTime(T0.day().plus(1).start().0 + 5 * 3600));
    let upload = UploadRequest::tokened(
        TokenUpload {
            contents: contents.clone(),
            token: token.clone(),
        },
        phone.key(),
    );
    let uploaded = sealed_post(&node, seal, SealedRoute::Upload, &wire::encode(&upload)).await;
    assert_eq!(uploaded.3, 200, "{}", String::from_utf8_lossy(&uploaded.4));
    // A retry of the same bytes is answered as the first was; the report is stored once.
    let retried = sealed_post(&node, seal, SealedRoute::Upload, &wire::encode(&upload)).await;
    assert_eq!(retried.3, 200);
    // The same token under another revision key: refused.
    let thief = UploadRequest::tokened(
        TokenUpload {
            contents: contents.clone(),
            token: token.clone(),
        },
        RevisionSecret::generate(&mut rand::rng()).key(),
    );
    node.post_raw(
        "/v1/uploads",
        "application/octet-stream",
        &wire::encode(&thief),
    )
    .await
    .assert_error(403, "token-invalid");

    node.next_batches().await;
    let published = node.all_published().await;
    let ephemera_proto::ReportContents::Pet(reported) = &contents else {
        unreachable!("a pet report")
    };
    for reported in reported {
        assert!(
            published.tokens.iter().any(|t| t.token == reported.token),
            "a reported token is missing from the batches"
        );
    }
    // The data folder keeps no byte of the token's signature: only its id, as the
    // certificate id (the single-use mark).
    let tree = read_tree(dir.path());
    assert!(!contains(&tree, &token.signature[..32]));
    node.stop().await;
}

/// The key id of a request's first blinded message.
fn keys_first_id(request: &TokenVerifyRequest) -> ephemera_proto::token::TokenKeyId {
    request.entries().unwrap()[0].0
}
