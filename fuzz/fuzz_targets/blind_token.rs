//! Blind upload tokens (`proto::token`): a key set frame verified under a fixed authority, an
//! upload token checked against the frozen vector's key, the `POST /v2/verify` JSON bodies,
//! a public key's SPKI, and a blinded message at the signer.
#![no_main]
use std::sync::OnceLock;

use ephemera_proto::auth::{AuthoritySigningKey, ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::revision::HmacBinding;
use ephemera_proto::token::{
    Audience, BlindedMessage, OnsetClass, SignedTokenKeySet, TokenClass, TokenKeys, TokenPublicKey,
    TokenSigningKey, TokenStatement, TokenVerifyRequest, TokenVerifyResponse, UploadToken,
};
use ephemera_proto::{DayNumber, ReportContents, ReportType, UnixTime, wire};
use libfuzzer_sys::fuzz_target;

const EPOCH: DayNumber = DayNumber(19_675);
const CLASS: TokenClass = TokenClass {
    test_type: ReportType::ConfirmedTest,
    onset: OnsetClass::Recent,
};

/// The frozen vector's key (generating one per input would take the fuzzer's time).
fn key() -> &'static (TokenSigningKey, TokenKeys) {
    static KEY: OnceLock<(TokenSigningKey, TokenKeys)> = OnceLock::new();
    KEY.get_or_init(|| {
        let frozen: std::collections::BTreeMap<String, String> =
            serde_json::from_str(include_str!("../../proto/tests/vectors/token.json")).unwrap();
        let der = hex::decode(&frozen["input_token_key_pkcs8"]).unwrap();
        let key = TokenSigningKey::from_der(EPOCH, CLASS, &der).unwrap();
        let mut keys = TokenKeys::default();
        keys.insert(key.public().parse().unwrap()).unwrap();
        (key, keys)
    })
}

fuzz_target!(|data: &[u8]| {
    let authority = AuthoritySigningKey::from_seed(&[1; 32]);
    let trusted = TrustedAuthorities::new().with(authority.public_key());
    let audience = Audience::named("ephemera-test");
    if let Ok(set) = wire::decode::<SignedTokenKeySet>(data) {
        let _ = set.verify(&trusted, &audience);
        let _ = set.digest();
    }
    let (signer, keys) = key();
    if let Ok(token) = postcard::from_bytes::<UploadToken>(data) {
        let contents = ReportContents::Pet(Vec::new());
        let statement = TokenStatement {
            audience: &audience,
            contents: &contents,
            binding: HmacBinding::Unbound,
        };
        let now = UnixTime(u64::from(EPOCH.0) * 86_400);
        let _ = token.verify(keys, &statement, now, ExpiryPolicy::FirstUpload);
        let _ = token.id();
    }
    if let Ok(request) = serde_json::from_slice::<TokenVerifyRequest>(data) {
        let _ = request.entries();
    }
    let _ = serde_json::from_slice::<TokenVerifyResponse>(data);
    let _ = TokenPublicKey {
        epoch: EPOCH,
        class: CLASS,
        spki: data.to_vec(),
    }
    .parse();
    let _ = signer.blind_sign(&BlindedMessage(data.to_vec()), &mut rand::rng());
});
