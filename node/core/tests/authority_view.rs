//! Issue 31's "done when" for item 1: the authority's complete view cannot match an upload
//! to its verify better than chance, with the phone's random delay on (`docs/PROTOCOL.md`
//! §4.4, `docs/SECURITY.md`).
//!
//! 200 phones, each with a code of its own class (three report types, onset known or not),
//! verify at random times of one day through the real node core
//! ([`NodeCore::redeem_code_for_token`]) and upload their token as
//! [`UploadDelay`] says, through the node's intake ([`NodeCore::admit_upload`]) into the same
//! store. The authority keeps everything: who got which code, every verify request and
//! answer with its exact time, what its store holds (the certificate the node made from each
//! token states the day, not the time), and every upload (token, report, exact arrival time)
//! as a node sees it. Its adversary pairs, within each class, the
//! k-th verify with the k-th upload in time order, which is the best matching when the delay
//! is short; the bytes of a verify (blinded messages, blind signature) appear in no upload,
//! so time and class are all it has.
//!
//! With no delay it links every upload (so the test can fail); with the default delay
//! (a random instant of the next day) its hits stay within a Poisson bound of chance
//! (the number of classes: one expected hit per class). A uniform delay of up to six hours
//! is printed for comparison: better than chance, as `UploadDelay::Uniform`'s doc says.

use std::collections::BTreeMap;

use ephemera_node_core::authority::CodeGrant;
use ephemera_node_core::intake::Admission;
use ephemera_node_core::store::{MemoryReportStore, ReportStore};
use ephemera_node_core::token_keys::TokenKeyring;
use ephemera_node_core::{NodeCore, NodeKeys, Policy};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::revision::{HmacBinding, RevisionSecret};
use ephemera_proto::token::{
    TokenClass, TokenExchange, TokenKeyId, TokenStatement, TokenUpload, UploadDelay, UploadToken,
};
use ephemera_proto::upload::UploadRequest;
use ephemera_proto::{DayNumber, PublishedToken, ReportContents, ReportType, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const PHONES: usize = 200;
const DAY: DayNumber = DayNumber(19_675);

/// What the authority saw of one verify.
struct VerifySeen {
    person: usize,
    at: UnixTime,
    class: TokenKeyId,
    bytes: Vec<Vec<u8>>,
}

/// What a node saw of one upload.
struct UploadSeen {
    person: usize,
    at: UnixTime,
    class: TokenKeyId,
    token: UploadToken,
}

/// Runs the day with `delay`; returns (correct links, expected by chance).
fn run(delay: UploadDelay, seed: u64) -> (usize, usize) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let midnight = UnixTime(u64::from(DAY.0) * 86_400);
    let core = NodeCore::new(Policy::default(), NodeKeys::generate(&mut rng), &mut rng);
    for epoch in [DAY, DAY.plus(1)] {
        let keys = TokenKeyring::generate_epoch(epoch, &mut rng).unwrap();
        core.install_token_epoch(epoch, keys, midnight).unwrap();
    }
    let store = MemoryReportStore::new();
    let audience = core.policy().audience;
    let keys = core
        .token_key_set(midnight)
        .verify(core.trusted(), &audience)
        .unwrap();
    let types = [
        ReportType::ConfirmedTest,
        ReportType::ConfirmedClinicalDiagnosis,
        ReportType::SelfReport,
    ];
    let mut verifies = Vec::new();
    let mut uploads = Vec::new();
    for person in 0..PHONES {
        // A code issued ten minutes before a verify at a random time of the day.
        let verified_at = midnight.plus_seconds(600 + rng.next_u64() % (86_400 - 4_200));
        let grant = CodeGrant {
            test_type: types[person % types.len()],
            symptom_onset: (rng.next_u32() % 2 == 0).then(|| DAY.minus(2)),
            issued_by_key: None,
        };
        let code = core
            .issue_codes(&store, grant, 1, verified_at.minus_seconds(600), &mut rng)
            .unwrap()
            .codes
            .remove(0);
        let mut token = [0u8; 16];
        rng.fill_bytes(&mut token);
        let contents = ReportContents::Pet(vec![PublishedToken {
            day: DAY.minus(1),
            token: EncounterToken(token),
        }]);
        let revision_key = RevisionSecret::generate(&mut rng).key();
        let binding = HmacBinding::Upload(revision_key);
        let statement = TokenStatement {
            audience: &audience,
            contents: &contents,
            binding,
        };
        let (exchange, request) =
            TokenExchange::prepare(&keys, DAY, &statement, &code, &mut rng).unwrap();
        let answer = core
            .redeem_code_for_token(&store, &request, verified_at, &mut rng)
            .unwrap();
        let token = exchange.finish(&keys, &answer).unwrap();
        let mut seen: Vec<Vec<u8>> = request
            .entries()
            .unwrap()
            .into_iter()
            .map(|(_, message)| message.0)
            .collect();
        seen.push(hex::decode(&answer.blind_signature).unwrap());
        verifies.push(VerifySeen {
            person,
            at: verified_at,
            class: token.key,
            bytes: seen,
        });
        // The upload, through the node's intake, into the same store.
        let uploaded_at = delay.upload_at(verified_at, &mut rng);
        let request = UploadRequest::tokened(
            TokenUpload {
                contents: contents.clone(),
                token: token.clone(),
            },
            revision_key,
        );
        let Admission::Commit(plan) = core
            .admit_upload(&store, request, uploaded_at, false)
            .unwrap()
        else {
            panic!("a real upload is planned")
        };
        store.commit_upload(&plan.commit).unwrap();
        // What the store keeps of it names the verify's day and class, never a time.
        let stored = store.upload(&plan.commit.upload.0).unwrap().unwrap();
        let certificate = &stored.upload.certificate.certificate;
        assert_eq!(certificate.issued_at, DAY.start());
        assert_eq!(certificate.symptom_onset, None);
        uploads.push(UploadSeen {
            person,
            at: uploaded_at,
            class: token.key,
            token,
        });
    }
    // No byte string of a verify shows up in any upload.
    for upload in &uploads {
        let bytes = postcard::to_allocvec(&upload.token).unwrap();
        for verify in &verifies {
            for seen in &verify.bytes {
                assert!(!bytes.windows(seen.len()).any(|w| w == seen.as_slice()));
            }
        }
    }
    // Every token is different: the spent-token set holds each once.
    let ids: std::collections::BTreeSet<_> = uploads.iter().map(|u| u.token.id()).collect();
    assert_eq!(ids.len(), PHONES);
    // The adversary: within each class, the k-th verify and the k-th upload in time order.
    let mut by_class: BTreeMap<TokenKeyId, (Vec<&VerifySeen>, Vec<&UploadSeen>)> = BTreeMap::new();
    for verify in &verifies {
        by_class.entry(verify.class).or_default().0.push(verify);
    }
    for upload in &uploads {
        by_class.entry(upload.class).or_default().1.push(upload);
    }
    let mut correct = 0;
    for (mut v, mut u) in by_class.values().cloned() {
        v.sort_by_key(|s| s.at);
        u.sort_by_key(|s| s.at);
        correct += v
            .iter()
            .zip(&u)
            .filter(|(v, u)| v.person == u.person)
            .count();
    }
    // Random matching within each class gets one hit per class on average.
    (correct, by_class.len())
}

#[test]
fn the_authority_cannot_match_uploads_to_verifies_better_than_chance_with_the_delay_on() {
    let (linked, _) = run(UploadDelay::Immediate, 1);
    println!("no delay: the authority links {linked} of {PHONES} uploads");
    assert!(linked >= PHONES * 95 / 100, "{linked}");

    let (window, classes) = run(
        UploadDelay::Uniform {
            max_seconds: 6 * 3600,
        },
        2,
    );
    println!("uniform delay up to 6 h: {window} of {PHONES} (chance {classes})");

    let (hits, chance) = run(UploadDelay::NextDay, 3);
    println!("next-day delay (default): {hits} of {PHONES} (chance {chance})");
    assert!(
        TokenClass::ALL.len() >= chance,
        "at most one expected hit per class"
    );
    // Hits of random matchings are Poisson(chance) within a hair: P(X > chance + 5 sd + 3)
    // is below one in a million for chance <= 10.
    let bound = chance as f64 + 5.0 * (chance as f64).sqrt() + 3.0;
    assert!(
        (hits as f64) <= bound,
        "{hits} hits against a bound of {bound:.1}"
    );
}
