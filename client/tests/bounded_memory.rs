//! Matching a huge batch in bounded memory: a 1,000,000-token batch streams through a
//! phone while neither the phone's ingest state nor the process's resident memory grows
//! with it. (Its own test binary, so no other test allocates beside it.)

use ephemera_client::store::{Evidence, MemoryStore, Store};
use ephemera_client::{ClientConfig, Phone, Sighting, Signal};
use ephemera_proto::batch::{BatchContents, NodeSigningKey};
use ephemera_proto::{PublishedToken, SchemeKind, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

const TOKENS: usize = 1_000_000;

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn a_million_token_batch_streams_in_bounded_memory() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let node = NodeSigningKey::generate(&mut rng);
    let config = ClientConfig::new(SchemeKind::Pet)
        .with_trusted_node(node.public_key())
        .with_decoy_rate(0.0);
    let mut alice = Phone::new(config.clone(), MemoryStore::new(), [1; 32]).unwrap();
    let mut bob = Phone::new(config, MemoryStore::new(), [2; 32]).unwrap();
    let start = UnixTime(1_700_006_400);
    for step in 0..=40u64 {
        let now = start.plus_seconds(step * 15);
        let signal = Signal::Rssi {
            rssi: -55,
            tx_power: None,
        };
        let ad = alice.advertisement(now).unwrap();
        bob.handle_sighting(
            now,
            &Sighting {
                payload: &ad.full,
                signal,
            },
        )
        .unwrap();
        let ad = bob.advertisement(now).unwrap();
        alice
            .handle_sighting(
                now,
                &Sighting {
                    payload: &ad.full,
                    signal,
                },
            )
            .unwrap();
    }
    alice.close_all_encounters().unwrap();
    bob.close_all_encounters().unwrap();
    let mut alice_tokens = Vec::new();
    alice
        .store()
        .for_each_encounter(&mut |r| {
            if let Evidence::Pet { own, .. } = r.evidence {
                alice_tokens.push(PublishedToken {
                    day: r.day(),
                    token: own,
                });
            }
        })
        .unwrap();
    assert!(!alice_tokens.is_empty());

    // A batch of a million tokens with Alice's among them.
    let mut batch = BatchContents {
        sequence: 1,
        created_at: start.plus_seconds(7200),
        ..Default::default()
    };
    batch.tokens.reserve(TOKENS);
    batch.tokens.extend(alice_tokens.iter().copied());
    let mut token = [0u8; 16];
    while batch.tokens.len() < TOKENS {
        rng.fill_bytes(&mut token);
        batch.tokens.push(PublishedToken {
            day: start.day(),
            token: ephemera_proto::pet::EncounterToken(token),
        });
    }
    let signed = batch.sign(&node);
    assert!(signed.bytes().len() > 20 * TOKENS);

    let config = bob.shared_config();
    let mut ingest = bob.begin_batch(&config.trusted_nodes).unwrap();
    let retained = ingest.retained_bytes();
    let rss_before = resident_bytes();
    for (i, chunk) in signed.bytes().chunks(64 * 1024).enumerate() {
        ingest.push(chunk).unwrap();
        if i % 50 == 0 {
            // Only matches may add state, and there are few of them.
            assert!(ingest.retained_bytes() <= retained.max(1024), "chunk {i}");
        }
    }
    assert_eq!(ingest.entries(), TOKENS as u64);
    assert_eq!(ingest.matches(), alice_tokens.len());
    if let (Some(before), Some(after)) = (rss_before, resident_bytes()) {
        let grown = after.saturating_sub(before);
        // The batch itself is 20 MB; collecting it would grow memory by more than that.
        assert!(grown < 4 << 20, "resident memory grew by {grown} bytes");
    }
    let summary = bob.finish_batch(start.plus_seconds(7200), ingest).unwrap();
    assert_eq!(summary.new_windows, alice_tokens.len());
    assert!(!bob.exposures(start.plus_seconds(7200)).unwrap().is_empty());
}
