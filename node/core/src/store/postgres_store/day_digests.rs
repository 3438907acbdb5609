//! The per-day upload digests (`day_digests`, migration 2): for each sync day, how many
//! uploads it files and the XOR of their ids, kept in the transaction that inserts or
//! purges them, so `upload_count` (every purge and metrics scrape) and `day_digest` (every
//! sync round) read a few rows instead of counting or rereading `uploads`.
//!
//! Nodes of a group change a day's row concurrently: each change is one row-level upsert
//! (`n = n + $2`, `x = x # $3`: sums and XORs commute), applied at the end of the
//! transaction, days in ascending order, so two transactions never wait on each other's
//! day rows in a cycle, and the row of today is locked only from that statement to the
//! commit. The XOR is four `bigint` columns (PostgreSQL has `#` on integers, not on
//! `bytea`), each eight bytes of the ids, big-endian.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;
use ephemera_proto::DayNumber;
use ephemera_proto::sync::DayDigest;

use super::connection::Failure;
use super::sql_day;

/// Four big-endian 8-byte words of an id (a slice of another length reads as zeros past
/// its end, and such ids never reach here: ids are 32 bytes).
fn words(id: &[u8]) -> [i64; 4] {
    let mut out = [0i64; 4];
    for (word, chunk) in out.iter_mut().zip(id.chunks(8)) {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        *word = i64::from_be_bytes(bytes);
    }
    out
}

/// What one transaction changes in the digests: per sync day, the count and the XOR.
#[derive(Debug, Default)]
pub(super) struct DigestDelta(BTreeMap<i32, (i64, [i64; 4])>);

impl DigestDelta {
    /// An upload of sync day `day` inserted (`added`) or removed.
    pub(super) fn change(&mut self, day: i32, id: &[u8], added: bool) {
        let (n, xor) = self.0.entry(day).or_default();
        *n += if added { 1 } else { -1 };
        for (x, w) in xor.iter_mut().zip(words(id)) {
            *x ^= w;
        }
    }

    /// Applies the changes in `tx` (the transaction that made them), days ascending; a
    /// day left with no upload loses its row.
    pub(super) async fn apply(&self, tx: &impl GenericClient) -> Result<(), Failure> {
        let mut emptied = Vec::new();
        for (day, (n, x)) in &self.0 {
            if *n == 0 && *x == [0; 4] {
                continue;
            }
            tx.execute(
                "INSERT INTO day_digests VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (sync_day) DO UPDATE SET n = day_digests.n + excluded.n, \
                 x0 = day_digests.x0 # excluded.x0, x1 = day_digests.x1 # excluded.x1, \
                 x2 = day_digests.x2 # excluded.x2, x3 = day_digests.x3 # excluded.x3",
                &[day, n, &x[0], &x[1], &x[2], &x[3]],
            )
            .await?;
            if *n < 0 {
                emptied.push(*day);
            }
        }
        if !emptied.is_empty() {
            // Rechecked on the row's newest version: a concurrent insert keeps it.
            tx.execute(
                "DELETE FROM day_digests WHERE sync_day = ANY($1) AND n = 0",
                &[&emptied],
            )
            .await?;
        }
        Ok(())
    }
}

/// The digest of `day`.
pub(super) async fn day_digest(
    c: &impl GenericClient,
    day: DayNumber,
) -> Result<DayDigest, Failure> {
    let mut digest = DayDigest::empty(day);
    if let Some(row) = c
        .query_opt(
            "SELECT n, x0, x1, x2, x3 FROM day_digests WHERE sync_day = $1",
            &[&sql_day(day.0)],
        )
        .await?
    {
        digest.count = u32::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        for (i, chunk) in digest.xor.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&row.get::<_, i64>(i + 1).to_be_bytes());
        }
    }
    Ok(digest)
}

/// How many uploads are stored: the sum of the days' counts.
pub(super) async fn upload_count(c: &impl GenericClient) -> Result<u64, Failure> {
    let count: i64 = c
        .query_one("SELECT coalesce(sum(n), 0)::bigint FROM day_digests", &[])
        .await?
        .get(0);
    Ok(u64::try_from(count).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_the_ids_bytes_big_endian_and_a_delta_xors_them() {
        let mut id = [0u8; 32];
        id[7] = 1;
        id[8] = 0x80;
        assert_eq!(words(&id), [1, i64::MIN, 0, 0]);
        let mut delta = DigestDelta::default();
        delta.change(5, &id, true);
        delta.change(5, &id, false);
        delta.change(6, &id, true);
        assert_eq!(delta.0[&5], (0, [0; 4]));
        assert_eq!(delta.0[&6], (1, [1, i64::MIN, 0, 0]));
    }
}
