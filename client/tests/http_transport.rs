//! The `http` transport against a tiny node on 127.0.0.1 (feature `http`).
#![cfg(feature = "http")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use ephemera_client::http::HttpTransport;
use ephemera_client::store::MemoryStore;
use ephemera_client::{ClientConfig, Phone, PhoneEvent};
use ephemera_proto::batch::{BatchContents, BatchIndex, BatchIndexEntry, NodeSigningKey};
use ephemera_proto::sealed::SealingSecretKey;
use ephemera_proto::{SchemeKind, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

#[test]
fn the_transport_syncs_from_a_loopback_node() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let node = NodeSigningKey::generate(&mut rng);
    let now = UnixTime(1_700_006_400);
    let mut contents = BatchContents {
        sequence: 1,
        created_at: now,
        ..Default::default()
    };
    contents.pad_with_decoys(1000, now, 14, &mut rng);
    let batch = contents.sign(&node);
    let index = BatchIndex {
        batches: vec![BatchIndexEntry {
            id: batch.id(),
            sequence: 1,
            created_at: now,
            size: batch.bytes().len() as u64,
            keys: 0,
            tokens: 1000,
        }],
        next_cursor: 1,
        key_rollovers: Vec::new(),
        head: None,
        token_filters: false,
        sunset: None,
    };
    let empty = BatchIndex {
        batches: vec![],
        next_cursor: 1,
        key_rollovers: Vec::new(),
        head: None,
        token_filters: false,
        sunset: None,
    };
    let sealing = SealingSecretKey::generate(&mut rng);
    let announcement = node.announce_sealing_key(&sealing.public_key());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let batch_path = format!("/v1/batches/{}", batch.id().to_hex());
    let body_of = move |path: &str| -> Vec<u8> {
        match path {
            "/v1/batches?after=0" => serde_json::to_vec(&index).unwrap(),
            "/v1/batches?after=1" => serde_json::to_vec(&empty).unwrap(),
            "/v1/sealing-key" => serde_json::to_vec(&announcement).unwrap(),
            p if p == batch_path => batch.bytes().to_vec(),
            other => panic!("unexpected {other}"),
        }
    };
    let server = std::thread::spawn(move || {
        // A sync round: the sealing key, the index, the batch, the index again.
        for _ in 0..4 {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap().to_owned();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header == "\r\n" || header.is_empty() {
                    break;
                }
            }
            let body = body_of(&path);
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .unwrap();
            stream.write_all(&body).unwrap();
            let _ = reader.read(&mut [0u8; 1]);
        }
    });
    let config = ClientConfig::new(SchemeKind::Pet)
        .with_trusted_node(node.public_key())
        .with_decoy_rate(0.0);
    let mut phone = Phone::new(config, MemoryStore::new(), [1; 32]).unwrap();
    let transport = HttpTransport::new(format!("http://{address}"));
    phone.start_sync(now).unwrap();
    transport.drive(&mut phone, now).unwrap();
    server.join().unwrap();
    assert_eq!(phone.sync_cursor(), 1);
    assert_eq!(
        phone.poll_event(),
        Some(PhoneEvent::SyncCompleted {
            cursor: 1,
            batches: 1
        })
    );
}
