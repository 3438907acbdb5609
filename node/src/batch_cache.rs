//! Signed batches kept in memory, ready to serve.
//!
//! A batch is immutable once cut, so its body and the header values that describe it
//! (the strong `ETag`, `Content-Length`) are built once and then shared by every request:
//! serving a cached batch reads no storage, hashes nothing and formats nothing. The cache is
//! bounded by the bytes of the bodies it holds; when an insert would pass the bound, the
//! batches inserted longest ago go first (phones mostly fetch the newest batches; an
//! evicted one is read from storage again on its next request and re-enters as newest).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::http::HeaderValue;
use ephemera_proto::batch::BatchId;

use crate::send_file::BodyFiles;

/// Default bound of the cache: 64 MiB of batch bodies. Fourteen days of hourly batches at
/// the default minimum size (about 45 KB each) take about 15 MB of it.
pub(crate) const DEFAULT_BATCH_CACHE_BYTES: usize = 64 << 20;

/// One batch with its pre-built response header values. Cloning it shares, never copies.
#[derive(Clone, Debug)]
pub struct CachedBatch {
    body: Bytes,
    etag: HeaderValue,
    content_length: HeaderValue,
}

impl CachedBatch {
    /// Wraps the signed bytes of batch `id` (the id is the SHA-256 of `body`, so the
    /// quoted hex id is a strong validator).
    pub fn new(id: &BatchId, body: Bytes) -> CachedBatch {
        CachedBatch {
            etag: quoted_hex(id),
            content_length: HeaderValue::from(body.len()),
            body,
        }
    }

    /// The signed batch bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// `"<64 hex>"`: the `ETag` value.
    pub fn etag(&self) -> &HeaderValue {
        &self.etag
    }

    /// The `Content-Length` value.
    pub fn content_length(&self) -> &HeaderValue {
        &self.content_length
    }
}

/// `"` + lower-case hex of `id` + `"`, built without a fallible parse.
fn quoted_hex(id: &BatchId) -> HeaderValue {
    let hex = id.to_hex();
    let mut quoted = Vec::with_capacity(hex.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(hex.as_bytes());
    quoted.push(b'"');
    // Quotes and hex digits are visible ASCII, always a valid header value; the fallback
    // only exists so that no input can make this panic.
    HeaderValue::from_maybe_shared(Bytes::from(quoted))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
}

#[derive(Default)]
struct Entries {
    by_id: HashMap<BatchId, CachedBatch>,
    /// Insertion order, oldest first: the eviction order.
    order: VecDeque<BatchId>,
    bytes: usize,
}

/// Batches in memory, bounded by the total length of their bodies.
pub struct BatchCache {
    limit: usize,
    entries: RwLock<Entries>,
    /// The memory files of the cached bodies, for `sendfile` (`crate::send_file`).
    files: Arc<BodyFiles>,
}

impl std::fmt::Debug for BatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchCache")
            .field("limit", &self.limit)
            .field("batches", &self.len())
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl BatchCache {
    /// An empty cache holding at most `limit` bytes of batch bodies.
    pub fn new(limit: usize) -> BatchCache {
        BatchCache::with_files(limit, Arc::default())
    }

    /// As [`BatchCache::new`], registering every cached body in `files` (several caches
    /// may share one index) so connections can send it with `sendfile`.
    pub fn with_files(limit: usize, files: Arc<BodyFiles>) -> BatchCache {
        BatchCache {
            limit,
            entries: RwLock::new(Entries::default()),
            files,
        }
    }

    /// The cached batch `id`, if present (a shared read: hits run in parallel).
    pub fn get(&self, id: &BatchId) -> Option<CachedBatch> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .get(id)
            .cloned()
    }

    /// Caches batch `id` with `body` (evicting the oldest entries to stay within the
    /// bound) and returns it ready to serve. A body larger than the whole bound is
    /// returned but not kept. When `id` is already cached, the cached entry is returned.
    pub fn insert(&self, id: BatchId, body: Bytes) -> CachedBatch {
        self.insert_tagged(id, &id, body)
    }

    /// As [`BatchCache::insert`], for a body derived from batch `id` whose own SHA-256 is
    /// `tag` (a token filter): cached under `id`, served with `tag` as its `ETag`.
    pub fn insert_tagged(&self, id: BatchId, tag: &BatchId, body: Bytes) -> CachedBatch {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some(cached) = entries.by_id.get(&id) {
            return cached.clone();
        }
        let batch = CachedBatch::new(tag, body);
        let len = batch.body.len();
        if len > self.limit {
            return batch;
        }
        while entries.bytes + len > self.limit {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            if let Some(evicted) = entries.by_id.remove(&oldest) {
                entries.bytes -= evicted.body.len();
                self.files.remove(&evicted.body);
            }
        }
        entries.bytes += len;
        entries.order.push_back(id);
        entries.by_id.insert(id, batch.clone());
        self.files.add(&batch.body);
        batch
    }

    /// Drops every batch for which `keep` is false (purged batches).
    pub fn retain(&self, mut keep: impl FnMut(&BatchId) -> bool) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        let Entries {
            by_id,
            order,
            bytes,
        } = &mut *entries;
        order.retain(|id| {
            if keep(id) {
                return true;
            }
            if let Some(dropped) = by_id.remove(id) {
                *bytes -= dropped.body.len();
                self.files.remove(&dropped.body);
            }
            false
        });
    }

    /// Number of cached batches.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .len()
    }

    /// Whether no batch is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total bytes of the cached bodies (never above the bound).
    pub fn bytes(&self) -> usize {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BatchId {
        BatchId([n; 32])
    }

    fn body(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    #[test]
    fn header_values_describe_the_body() {
        let cache = BatchCache::new(1000);
        let batch = cache.insert(id(0xab), body(123, 7));
        assert_eq!(
            batch.etag().to_str().unwrap(),
            format!("\"{}\"", "ab".repeat(32))
        );
        assert_eq!(batch.content_length().to_str().unwrap(), "123");
        assert_eq!(batch.body().as_ref(), &[7u8; 123][..]);
        let again = cache.get(&id(0xab)).unwrap();
        assert_eq!(again.body(), batch.body());
        assert!(cache.get(&id(1)).is_none());
    }

    #[test]
    fn the_byte_bound_evicts_oldest_first() {
        let cache = BatchCache::new(250);
        cache.insert(id(1), body(100, 1));
        cache.insert(id(2), body(100, 2));
        assert_eq!((cache.len(), cache.bytes()), (2, 200));
        // 300 > 250: batch 1, the oldest, goes.
        cache.insert(id(3), body(100, 3));
        assert_eq!((cache.len(), cache.bytes()), (2, 200));
        assert!(cache.get(&id(1)).is_none());
        assert!(cache.get(&id(2)).is_some() && cache.get(&id(3)).is_some());
        // A re-read batch comes back as the newest; now 2 is the oldest.
        cache.insert(id(1), body(100, 1));
        assert!(cache.get(&id(2)).is_none());
        assert!(cache.get(&id(3)).is_some() && cache.get(&id(1)).is_some());
        // Inserting a cached id again changes nothing.
        cache.insert(id(1), body(100, 9));
        assert_eq!(cache.get(&id(1)).unwrap().body()[0], 1);
        assert_eq!(cache.bytes(), 200);
    }

    #[test]
    fn a_body_over_the_bound_is_served_but_not_kept() {
        let cache = BatchCache::new(50);
        cache.insert(id(1), body(40, 1));
        let big = cache.insert(id(2), body(51, 2));
        assert_eq!(big.body().len(), 51);
        assert!(cache.get(&id(2)).is_none());
        assert!(cache.get(&id(1)).is_some(), "nothing evicted for it");
        assert_eq!(cache.bytes(), 40);
    }

    #[test]
    fn retain_drops_purged_batches_and_their_bytes() {
        let cache = BatchCache::new(1000);
        for n in 1..=4 {
            cache.insert(id(n), body(10 * usize::from(n), n));
        }
        cache.retain(|b| b.0[0] % 2 == 0);
        assert_eq!((cache.len(), cache.bytes()), (2, 60));
        assert!(cache.get(&id(1)).is_none() && cache.get(&id(2)).is_some());
        // The eviction order no longer names the dropped ones.
        let cache_small = BatchCache::new(60);
        cache_small.insert(id(1), body(30, 1));
        cache_small.insert(id(2), body(30, 2));
        cache_small.retain(|b| b.0[0] == 2);
        cache_small.insert(id(3), body(30, 3));
        assert_eq!((cache_small.len(), cache_small.bytes()), (2, 60));
    }
}
