//! Blind upload tokens (`docs/PROTOCOL.md` §4.4): RFC 9474's vector for the variant we use,
//! and our own frozen vector for the commitment, the key id, the key set and the token.
//!
//! `tests/vectors/rfc9474.json` is RFC 9474 Appendix A's RSABSSA-SHA384-PSS-Randomized
//! vector (as the `blind-rsa-signatures` crate ships it), checked step by step:
//! blind with the vector's randomness, blind-sign, finalize, verify.
//!
//! `tests/vectors/token.json` was written once by the ignored test [`write_vectors`] and is
//! frozen: [`frozen_vectors_hold`] rebuilds every value from its inputs. Inputs: the token
//! key (PKCS#8 DER, generated once from `ChaCha20Rng::seed_from_u64(31)`) for epoch 19675
//! and class (ConfirmedTest, onset Recent), authority seed `01`×32, audience
//! `Audience::named("ephemera-test")`, revision secret seed `03`×32, one `pet` token
//! `04`×16 of day 19675; blinding draws from `ChaCha20Rng::seed_from_u64(32)`.
//! The token upload's frame, the certificate the first node makes for it and a token
//! revision's signature were added to the file when nodes began to take token uploads; the
//! values before them did not change.
//! If it fails, the format changed: do not regenerate the file to make it pass.

use std::collections::BTreeMap;
use std::path::PathBuf;

use blind_rsa_signatures::{MessageRandomizer, PSS, Randomized, SecretKey, Sha384, Signature};
use ephemera_proto::auth::{AuthoritySigningKey, CertificateId, ExpiryPolicy, TrustedAuthorities};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::revision::{HmacBinding, RevisionSecret};
use ephemera_proto::token::{
    Audience, OnsetClass, PendingToken, SignedTokenKeySet, TokenClass, TokenKeys, TokenSigningKey,
    TokenStatement, TokenUpload, UploadToken,
};
use ephemera_proto::upload::UploadRequest;
use ephemera_proto::{DayNumber, PublishedToken, ReportContents, ReportType, UnixTime, wire};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rsa::BoxedUint;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn read(name: &str) -> BTreeMap<String, String> {
    serde_json::from_str(&std::fs::read_to_string(dir().join(name)).expect("vector file"))
        .expect("vector json")
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text.trim_start_matches("0x")).expect("hex")
}

/// Hands out the RFC vector's random values in the order the crate draws them.
struct Replay(Vec<Vec<u8>>);

impl rand_core::TryRng for Replay {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        unreachable!("blinding draws bytes only")
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        unreachable!("blinding draws bytes only")
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.copy_from_slice(&self.0.remove(0));
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Replay {}

#[test]
fn rfc9474_rsabssa_sha384_pss_randomized() {
    let v = read("rfc9474.json");
    assert_eq!(v["name"], "RSABSSA-SHA384-PSS-Randomized");
    let uint = |k: &str| BoxedUint::from_str_radix_vartime(&v[k][2..], 16).expect("uint");
    let n = uint("n");
    let inner = rsa::RsaPrivateKey::from_components(
        n.clone(),
        uint("e"),
        uint("d"),
        vec![uint("p"), uint("q")],
    )
    .expect("the vector's key");
    let sk = SecretKey::<Sha384, PSS, Randomized>::new(inner);
    let pk = sk.public_key().expect("public key");
    // The crate draws the prefix, the salt, then r (the inverse of the vector's `inv`),
    // little-endian.
    let r = uint("inv")
        .invert_mod(&n.to_nz().expect("n"))
        .expect("invertible")
        .to_le_bytes()
        .to_vec();
    let mut rng = Replay(vec![unhex(&v["msg_prefix"]), unhex(&v["salt"]), r]);
    let msg = unhex(&v["msg"]);
    let blinded = pk.blind(&mut rng, &msg).expect("blind");
    assert_eq!(blinded.blind_message.0, unhex(&v["blinded_msg"]));
    let blind_sig = sk.blind_sign(&blinded.blind_message).expect("blind sign");
    assert_eq!(blind_sig.0, unhex(&v["blind_sig"]));
    let sig = pk.finalize(&blind_sig, &blinded, &msg).expect("finalize");
    assert_eq!(sig.0, unhex(&v["sig"]));
    let prefix = MessageRandomizer(unhex(&v["msg_prefix"]).try_into().expect("32 bytes"));
    assert!(pk.verify(&sig, Some(prefix), &msg).is_ok());
    let mut forged = sig.0.clone();
    forged[10] ^= 1;
    assert!(pk.verify(&Signature(forged), Some(prefix), &msg).is_err());
}

const EPOCH: DayNumber = DayNumber(19_675);
const CLASS: TokenClass = TokenClass {
    test_type: ReportType::ConfirmedTest,
    onset: OnsetClass::Recent,
};

/// Every frozen value by name, lower-case hex, from the token key's DER.
fn vectors(key_der: &[u8]) -> BTreeMap<&'static str, String> {
    let key = TokenSigningKey::from_der(EPOCH, CLASS, key_der).expect("key");
    let authority = AuthoritySigningKey::from_seed(&[1; 32]);
    let audience = Audience::named("ephemera-test");
    let set = SignedTokenKeySet::publish(&authority, audience, UnixTime(1_700_000_000), [&key]);
    let keys = set
        .verify(
            &TrustedAuthorities::new().with(authority.public_key()),
            &audience,
        )
        .expect("key set");
    let verifier = keys.key_for(EPOCH, CLASS).expect("key");
    let contents = ReportContents::Pet(vec![PublishedToken {
        day: DayNumber(19_675),
        token: EncounterToken([4; 16]),
    }]);
    let statement = TokenStatement {
        audience: &audience,
        contents: &contents,
        binding: HmacBinding::Upload(RevisionSecret::from_seed(&[3; 32]).key()),
    };
    let commitment = statement.commitment(EPOCH, CLASS);
    let mut rng = ChaCha20Rng::seed_from_u64(32);
    let (pending, blinded) = PendingToken::blind(verifier, commitment, &mut rng).expect("blind");
    let answer = key.blind_sign(&blinded, &mut rng).expect("sign");
    let token = pending.finalize(verifier, &answer).expect("finalize");
    let now = UnixTime(u64::from(EPOCH.0) * 86_400 + 3_600);
    token
        .verify(&keys, &statement, now, ExpiryPolicy::FirstUpload)
        .expect("the token verifies");
    let mut out = BTreeMap::new();
    out.insert("audience", hex::encode(audience.0));
    out.insert("token_key_spki", hex::encode(&key.public().spki));
    out.insert("token_key_id", hex::encode(verifier.id().0));
    out.insert("key_set_frame", hex::encode(wire::encode(&set)));
    out.insert("key_set_digest", hex::encode(set.digest()));
    out.insert("commitment", hex::encode(commitment.0));
    out.insert("blinded_message", hex::encode(&blinded.0));
    out.insert("blind_signature", hex::encode(&answer.0));
    out.insert(
        "upload_token",
        hex::encode(postcard::to_allocvec(&token).expect("postcard")),
    );
    out.insert("token_id", hex::encode(token.id().0));
    // The upload with the token, the certificate the first node makes for it, and a token
    // revision's signature (added when nodes took token uploads; the values above are as
    // first frozen).
    let revision = RevisionSecret::from_seed(&[3; 32]);
    let upload = TokenUpload {
        contents: contents.clone(),
        token: token.clone(),
    };
    out.insert(
        "upload_request_tokened",
        hex::encode(wire::encode(&UploadRequest::tokened(
            upload.clone(),
            revision.key(),
        ))),
    );
    let certified = upload
        .clone()
        .certify(&keys, &audience, statement.binding, &authority, now)
        .expect("certify");
    out.insert(
        "token_certified_upload",
        hex::encode(wire::encode(&certified)),
    );
    out.insert(
        "token_revision_signature",
        hex::encode(
            revision
                .sign_token_revision(&upload.certificate_id(), &CertificateId([5; 16]))
                .0,
        ),
    );
    out
}

#[test]
fn frozen_vectors_hold() {
    let frozen = read("token.json");
    let key_der = unhex(&frozen["input_token_key_pkcs8"]);
    let computed = vectors(&key_der);
    for (name, value) in &computed {
        assert_eq!(&frozen[*name], value, "vector `{name}` changed");
    }
    assert_eq!(
        frozen.len(),
        computed.len() + 1,
        "every frozen vector is checked"
    );
    let token: UploadToken =
        postcard::from_bytes(&unhex(&frozen["upload_token"])).expect("the token decodes");
    assert_eq!(hex::encode(token.id().0), frozen["token_id"]);
    let set: SignedTokenKeySet =
        wire::decode(&unhex(&frozen["key_set_frame"])).expect("the key set decodes");
    let mut keys = TokenKeys::default();
    keys.merge(
        set.verify(
            &TrustedAuthorities::new().with(set.set.authority),
            &set.set.audience,
        )
        .expect("the set verifies"),
    )
    .expect("merge");
    assert_eq!(keys.len(), 1);
}

/// Writes `tests/vectors/token.json` (run once, with `--ignored`; never to make a failing
/// check pass).
#[test]
#[ignore = "writes the frozen vectors once"]
fn write_vectors() {
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let key = TokenSigningKey::generate(&mut rng, EPOCH, CLASS).expect("key");
    let der = key.to_der().expect("der");
    let mut all: BTreeMap<&str, String> = vectors(&der);
    all.insert("input_token_key_pkcs8", hex::encode(&*der));
    let text = serde_json::to_string_pretty(&all).expect("json");
    std::fs::write(dir().join("token.json"), text + "\n").expect("write");
}
