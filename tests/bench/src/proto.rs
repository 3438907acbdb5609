//! Protocol primitives: RPI derivation per key, `pet` tokens per encounter, certificate
//! verification, blind upload tokens (sizes, blind signatures and verifications per second).

use std::hint::black_box;
use std::time::Duration;

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use ephemera_proto::auth::{
    AuthoritySigningKey, CertificateRequest, ExpiryPolicy, ReportHmac, TrustedAuthorities,
};
use ephemera_proto::gaen::{RollingProximityIdentifier, TemporaryExposureKey};
use ephemera_proto::pet::{DailySecret, encounter_tokens};
use ephemera_proto::{IntervalNumber, ReportType, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use ring::signature::{self, KeyPair};

use super::{Figure, rate};

/// Runs the protocol benchmarks, each for about `budget`.
pub fn run(budget: Duration) -> Vec<Figure> {
    let mut figures = vec![
        rpi_derivation(budget),
        pet_tokens(budget),
        certificate_verification(budget),
    ];
    figures.extend(blind_tokens(budget));
    figures
}

/// Keys per second turned into their 144 RPIs (HKDF for the RPIK + 144 AES blocks), against
/// the raw AES-128 throughput of the same `aes` code over 144 blocks (the bound without
/// HKDF).
fn rpi_derivation(budget: Duration) -> Figure {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let keys: Vec<TemporaryExposureKey> = (0..1024)
        .map(|_| TemporaryExposureKey::generate(&mut rng))
        .collect();
    let mut out = [RollingProximityIdentifier([0; 16]); 144];
    let mut i = 0;
    let value = rate(budget, 1, || {
        let rpik = keys[i % keys.len()].rpik();
        rpik.rpis_into(IntervalNumber(2_800_000), &mut out);
        black_box(&out);
        i += 1;
    });
    let cipher = Aes128::new(&[7u8; 16].into());
    let mut blocks = [aes::Block::default(); 144];
    let aes_blocks_per_s = rate(budget, 144, || {
        cipher.encrypt_blocks(&mut blocks);
        black_box(&blocks);
    });
    Figure::new(
        "gaen-rpi-derivation",
        value,
        "keys/s",
        aes_blocks_per_s / 144.0,
    )
}

/// Encounters per second turned into their two tokens (X25519 + HKDF), against raw X25519
/// Diffie–Hellman per second with the same library.
fn pet_tokens(budget: Duration) -> Figure {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let own = DailySecret::generate(&mut rng).ephemeral_key_pair(IntervalNumber(2_800_000));
    let peers: Vec<_> = (0..256)
        .map(|_| {
            DailySecret::generate(&mut rng)
                .ephemeral_key_pair(IntervalNumber(2_800_000))
                .public()
        })
        .collect();
    let mut i = 0;
    let value = rate(budget, 1, || {
        black_box(encounter_tokens(&own, &peers[i % peers.len()]).ok());
        i += 1;
    });
    let secret = x25519_dalek::StaticSecret::from([9u8; 32]);
    let peer_keys: Vec<x25519_dalek::PublicKey> = peers
        .iter()
        .map(|p| x25519_dalek::PublicKey::from(p.0))
        .collect();
    let mut j = 0;
    let dh_per_s = rate(budget, 1, || {
        black_box(secret.diffie_hellman(&peer_keys[j % peer_keys.len()]));
        j += 1;
    });
    Figure::new("pet-token-derivation", value, "encounters/s", dh_per_s)
}

/// Certificates verified per second, against raw Ed25519 verifications per second (ring).
fn certificate_verification(budget: Duration) -> Figure {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let authority = AuthoritySigningKey::generate(&mut rng);
    let trusted = TrustedAuthorities::new().with(authority.public_key());
    let now = UnixTime(1_700_000_000);
    let request = CertificateRequest {
        report_hmac: ReportHmac([1; 32]),
        test_type: ReportType::ConfirmedTest,
        symptom_onset: None,
    };
    let certificate = authority.issue(&request, now, 3600, &mut rng);
    let value = rate(budget, 1, || {
        black_box(
            certificate
                .verify(&trusted, now, ExpiryPolicy::FirstUpload)
                .is_ok(),
        );
    });
    let pair = signature::Ed25519KeyPair::from_seed_unchecked(&[5; 32]).expect("seed");
    let message = [0u8; 120];
    let sig = pair.sign(&message);
    let public =
        signature::UnparsedPublicKey::new(&signature::ED25519, pair.public_key().as_ref().to_vec());
    let raw = rate(budget, 1, || {
        black_box(public.verify(&message, sig.as_ref()).is_ok());
    });
    Figure::new("certificate-verification", value, "certificates/s", raw)
}

/// Blind upload tokens (RFC 9474 RSABSSA-SHA384-PSS-Randomized, 2048-bit), on one core:
/// verifications per second (a whole `UploadToken::verify` of a one-token report: key
/// lookup, commitment, RSA-PSS check) against the per-core share of the node's target of
/// 20,000 verified uploads/s on 2 cores; blind signatures per second (the authority's
/// private-key operation, with RSA blinding) against the Ed25519 certificates it replaces;
/// the token's and the verify request's sizes against the certificate's and the version 1
/// request's; and the first node's whole check of a token upload (token, the certificate it
/// makes, the report checks) against the same per-core share.
fn blind_tokens(budget: Duration) -> Vec<Figure> {
    use ephemera_proto::api::VERIFY_REQUEST_SIZE;
    use ephemera_proto::pet::EncounterToken;
    use ephemera_proto::revision::HmacBinding;
    use ephemera_proto::token::{
        Audience, PendingToken, SignedTokenKeySet, TOKEN_VERIFY_REQUEST_SIZE, TokenClass,
        TokenSigningKey, TokenStatement,
    };
    use ephemera_proto::{PublishedToken, ReportContents, wire};

    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let now = UnixTime(1_700_000_000);
    let epoch = now.day();
    let authority = AuthoritySigningKey::generate(&mut rng);
    let signers: Vec<TokenSigningKey> = TokenClass::ALL
        .iter()
        .map(|class| TokenSigningKey::generate(&mut rng, epoch, *class).expect("key"))
        .collect();
    let audience = Audience::named("bench");
    let set = SignedTokenKeySet::publish(&authority, audience, now, &signers);
    let keys = set
        .verify(
            &TrustedAuthorities::new().with(authority.public_key()),
            &audience,
        )
        .expect("key set");
    let signer = &signers[0];
    let verifier = keys.get(&signer.public().id()).expect("key");
    let contents = ReportContents::Pet(vec![PublishedToken {
        day: epoch,
        token: EncounterToken([6; 16]),
    }]);
    let statement = TokenStatement {
        audience: &audience,
        contents: &contents,
        binding: HmacBinding::Unbound,
    };
    let (pending, blinded) = PendingToken::blind(
        verifier,
        statement.commitment(epoch, signer.public().class),
        &mut rng,
    )
    .expect("blind");
    let sign_rate = rate(budget, 1, || {
        black_box(signer.blind_sign(&blinded, &mut rng).is_ok());
    });
    let answer = signer.blind_sign(&blinded, &mut rng).expect("sign");
    let token = pending.finalize(verifier, &answer).expect("finalize");
    let verify_rate = rate(budget, 1, || {
        black_box(
            token
                .verify(&keys, &statement, now, ExpiryPolicy::FirstUpload)
                .is_ok(),
        );
    });
    let certificate = authority.issue(
        &CertificateRequest {
            report_hmac: ReportHmac([1; 32]),
            test_type: ReportType::ConfirmedTest,
            symptom_onset: None,
        },
        now,
        3600,
        &mut rng,
    );
    let certificate_rate = rate(budget, 1, || {
        let request = CertificateRequest {
            report_hmac: ReportHmac([1; 32]),
            test_type: ReportType::ConfirmedTest,
            symptom_onset: None,
        };
        black_box(authority.issue(&request, now, 3600, &mut rng));
    });
    // The first node's whole check of a token upload, as `admit_upload` runs it: the token,
    // the certificate it makes, the report checks (not that certificate's own signature).
    let upload = ephemera_proto::token::TokenUpload {
        contents: contents.clone(),
        token: token.clone(),
    };
    let limits = ephemera_proto::report::ReportLimits::default();
    let upload_rate = rate(budget, 1, || {
        black_box(
            upload
                .clone()
                .certify_checked(
                    &keys,
                    &audience,
                    ephemera_proto::revision::Binding::Unbound,
                    &authority,
                    now,
                    &limits,
                )
                .is_ok(),
        );
    });
    let token_bytes = postcard::to_allocvec(&token).expect("postcard").len();
    vec![
        Figure::new(
            "blind-token-upload-check",
            upload_rate,
            "uploads/s",
            10_000.0,
        ),
        Figure::new(
            "blind-token-verification",
            verify_rate,
            "tokens/s",
            10_000.0,
        ),
        Figure::new(
            "blind-token-signing",
            sign_rate,
            "signatures/s",
            certificate_rate,
        ),
        Figure::new(
            "blind-token-size",
            token_bytes as f64,
            "bytes",
            wire::encode(&certificate).len() as f64,
        ),
        Figure::new(
            "blind-token-verify-request-size",
            TOKEN_VERIFY_REQUEST_SIZE as f64,
            "bytes",
            VERIFY_REQUEST_SIZE as f64,
        ),
        Figure::new(
            "blind-token-key-set-size",
            wire::encode(&set).len() as f64,
            "bytes",
            0.0,
        ),
    ]
}
