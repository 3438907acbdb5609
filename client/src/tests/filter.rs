//! Token filters in the sync loop (publication version 3, docs/PROTOCOL.md §6.5): a `pet`
//! phone fetches a batch's filter when its node offers them, finds its exposure through it,
//! falls back to the batch where there is none, and refuses a filter that is not the
//! batch's or not signed by its node, without moving the cursor.

use ephemera_proto::batch::{BatchContents, BatchId, BatchIndex, BatchIndexEntry, SignedBatch};
use ephemera_proto::filter::TokenFilter;
use ephemera_proto::{ReportContents, SchemeKind, UnixTime};

use super::util::{Air, FakeNode, PhonePair, T0, next_past_key};
use crate::store::MemoryStore;
use crate::{ClientError, Phone, PhoneEvent, Purpose, Response};

fn start() -> UnixTime {
    T0.day().plus(1).first_interval().plus(40).start()
}

/// A batch of `contents`, padded, chained to `previous` when given (else version 1).
fn batch(
    node: &mut FakeNode,
    now: UnixTime,
    contents: &[ReportContents],
    previous: Option<BatchId>,
) -> SignedBatch {
    node.sequence += 1;
    let mut batch = BatchContents {
        sequence: node.sequence,
        created_at: now,
        previous,
        ..Default::default()
    };
    for c in contents {
        if let ReportContents::Pet(tokens) = c {
            batch.tokens.extend(tokens.iter().copied());
        }
    }
    batch.pad_with_decoys(200, now, 14, &mut node.rng);
    batch.sign(&node.node)
}

/// The filter of `batch`, built and signed as a node does.
fn filter_of(node: &mut FakeNode, batch: &SignedBatch) -> Vec<u8> {
    let trusted = ephemera_proto::batch::TrustedNodes::new().with(node.node.public_key());
    let (summary, contents) = SignedBatch::verify(batch.bytes(), &trusted).unwrap();
    let tokens: Vec<_> = contents.tokens.iter().map(|t| t.token).collect();
    TokenFilter::build(&summary, &tokens, &node.node, &mut node.rng).unwrap()
}

fn entry(batch: &SignedBatch, sequence: u64, now: UnixTime) -> BatchIndexEntry {
    BatchIndexEntry {
        id: batch.id(),
        sequence,
        created_at: now,
        size: batch.bytes().len() as u64,
        keys: 0,
        tokens: 200,
    }
}

/// Starts a round and answers its index request with `entries`, offering filters.
fn index_offering_filters(
    phone: &mut Phone<MemoryStore>,
    now: UnixTime,
    entries: Vec<BatchIndexEntry>,
) {
    phone.start_sync(now).unwrap();
    let request = next_past_key(phone);
    assert_eq!(request.purpose, Purpose::FetchIndex);
    let index = BatchIndex {
        next_cursor: entries.last().map_or(0, |e| e.sequence),
        batches: entries,
        key_rollovers: Vec::new(),
        head: None,
        token_filters: true,
        sunset: None,
    };
    let body = serde_json::to_vec(&index).unwrap();
    phone
        .handle_response(now, request.id, Response { status: 200, body })
        .unwrap();
}

fn answer(
    phone: &mut Phone<MemoryStore>,
    now: UnixTime,
    expected: Purpose,
    status: u16,
    body: Vec<u8>,
) -> Result<(), ClientError> {
    let request = next_past_key(phone);
    assert_eq!(request.purpose, expected);
    phone.handle_response(now, request.id, Response { status, body })
}

#[test]
fn a_pet_phone_finds_its_exposure_through_a_filter_and_falls_back_to_a_batch() {
    let mut node = FakeNode::new(7);
    let mut pair = PhonePair::new(node.config(SchemeKind::Pet), start(), Air::Full);
    pair.together(15 * 60, 10);
    pair.apart(24 * 3600);
    let now = pair.now;
    let published = node.report(now, &mut pair.a, None);
    let old = batch(&mut node, now, &[], None);
    let chained = batch(&mut node, now, &[published], Some(old.id()));
    let chained_filter = filter_of(&mut node, &chained);
    assert!(chained_filter.len() * 2 < chained.bytes().len());
    let phone = &mut pair.b;
    index_offering_filters(
        phone,
        now,
        vec![entry(&old, 1, now), entry(&chained, 2, now)],
    );

    // A version 1 batch has no filter: the node answers 404 and the phone takes the batch.
    answer(phone, now, Purpose::FetchFilter(old.id()), 404, Vec::new()).unwrap();
    answer(
        phone,
        now,
        Purpose::FetchBatch(old.id()),
        200,
        old.bytes().to_vec(),
    )
    .unwrap();
    assert_eq!(phone.sync_cursor(), 1);
    answer(
        phone,
        now,
        Purpose::FetchFilter(chained.id()),
        200,
        chained_filter,
    )
    .unwrap();
    assert_eq!(phone.sync_cursor(), 2);
    let events: Vec<_> = std::iter::from_fn(|| phone.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, PhoneEvent::ExposureFound(d) if d.day == start().day())),
        "{events:?}"
    );
}

#[test]
fn a_filter_of_another_batch_or_signer_is_refused_and_the_cursor_stays() {
    let mut node = FakeNode::new(8);
    let mut phone = Phone::new(node.config(SchemeKind::Pet), MemoryStore::new(), [5; 32]).unwrap();
    let now = start();
    let first = batch(&mut node, now, &[], Some(BatchId::NONE));
    let second = batch(&mut node, now, &[], Some(first.id()));
    let first_filter = filter_of(&mut node, &first);
    let second_filter = filter_of(&mut node, &second);

    // The filter of another batch, under this entry's id; altered bytes; a filter signed by
    // a node the phone does not trust: each refused, the cursor where it was.
    let offer = |phone: &mut Phone<MemoryStore>, body: Vec<u8>| {
        index_offering_filters(phone, now, vec![entry(&second, 2, now)]);
        answer(phone, now, Purpose::FetchFilter(second.id()), 200, body)
    };
    assert_eq!(
        offer(&mut phone, first_filter),
        Err(ClientError::BatchIdMismatch)
    );
    let mut altered = second_filter.clone();
    let last = altered.len() - 1;
    altered[last] ^= 1;
    let refused = offer(&mut phone, altered);
    assert!(
        matches!(refused, Err(ClientError::Filter(_))),
        "{refused:?}"
    );
    assert_eq!(phone.status().last_error, Some("filter-rejected"));
    let mut stranger = FakeNode::new(9);
    let theirs = batch(&mut stranger, now, &[], Some(BatchId::NONE));
    let refused = offer(&mut phone, filter_of(&mut stranger, &theirs));
    assert!(
        matches!(refused, Err(ClientError::Filter(_))),
        "{refused:?}"
    );
    assert_eq!(phone.sync_cursor(), 0);
    // The genuine one is taken.
    offer(&mut phone, second_filter).unwrap();
    assert_eq!(phone.sync_cursor(), 2);
}

#[test]
fn a_gaen_phone_fetches_batches_even_where_filters_are_offered() {
    let mut node = FakeNode::new(10);
    let mut phone = Phone::new(node.config(SchemeKind::Gaen), MemoryStore::new(), [6; 32]).unwrap();
    let now = start();
    let only = batch(&mut node, now, &[], Some(BatchId::NONE));
    index_offering_filters(&mut phone, now, vec![entry(&only, 1, now)]);
    answer(
        &mut phone,
        now,
        Purpose::FetchBatch(only.id()),
        200,
        only.bytes().to_vec(),
    )
    .unwrap();
    assert_eq!(phone.sync_cursor(), 1);
}
