//! The free-space reserve of the data folder's filesystem (`[storage]
//! free_space_reserve_mb`), and the one place the node measures free disk.
//!
//! Below the reserve the node refuses new uploads, and the verifies that lead to one, with
//! 503 `insufficient-storage`, and stores no upload relayed by a peer (federation sees a
//! store failure: no penalty, and catch-up fetches it once there is room): the space left goes to what must not fail, the batch cuts of
//! what was acknowledged, the purges that free space, and the next start (sled writes a
//! snapshot when it opens a database). A verify is refused too because it spends the code
//! and hands out a certificate that lives `[authority] certificate_lifetime_seconds`: a phone
//! whose upload is then refused for longer would hold an expired certificate and a spent
//! code, and its report would be lost. Refused, it keeps its code and retries.
//!
//! The filesystem is asked at most once a second ([`SAMPLE_EVERY`]), by the node's
//! background loop every second and by `/healthz` and scrapes; phone requests and peers'
//! uploads only read the last answer ([`DiskReserve::holds`]), a lock and no system call.
//! Every sample also sets the free-disk gauges and `ephemera_disk_reserve_active`, and each
//! change of state is one log line (ERROR on entering the reserve, INFO on leaving it),
//! never at a phone request's time: such a line would date one phone's attempt.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// Least time between two samples of the filesystem.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Free and total bytes of a filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Space {
    /// Bytes available to unprivileged users (`statvfs` `f_bavail`).
    pub(crate) free: u64,
    /// Size of the filesystem.
    pub(crate) size: u64,
}

/// The free and total bytes of the filesystem holding `path`. `rustix` gives a safe
/// `statvfs` (this crate forbids `unsafe`, so not `libc`'s), and it is already built for
/// `tempfile`.
///
/// # Errors
/// The `statvfs` error (no such folder, say).
pub(crate) fn filesystem_space(path: &Path) -> io::Result<Space> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(Space {
        free: stat.f_bavail.saturating_mul(stat.f_frsize),
        size: stat.f_blocks.saturating_mul(stat.f_frsize),
    })
}

/// Free disk is below the reserve: a relayed upload is not stored (federation's view).
#[derive(Debug, thiserror::Error)]
#[error("free disk is below [storage] free_space_reserve_mb: relayed uploads wait for room")]
pub(crate) struct BelowDiskReserve;

/// Watches the free space of the data folder's filesystem against the reserve.
#[derive(Debug)]
pub(crate) struct DiskReserve {
    data_dir: PathBuf,
    /// The reserve in bytes; 0: off.
    reserve: u64,
    sampled: Mutex<Sampled>,
}

/// The last sample.
#[derive(Debug, Default)]
struct Sampled {
    /// When it was taken; `None` before the first.
    at: Option<Instant>,
    /// Whether free space was below the reserve (kept when a sample fails).
    below: bool,
    /// Whether the last sample failed (logged once per run of failures).
    failing: bool,
}

impl DiskReserve {
    /// A reserve of `reserve_mb` megabytes (2^20 bytes) on the filesystem of `data_dir`.
    pub(crate) fn new(data_dir: PathBuf, reserve_mb: u64) -> Self {
        DiskReserve {
            data_dir,
            reserve: reserve_mb.saturating_mul(1 << 20),
            sampled: Mutex::new(Sampled::default()),
        }
    }

    /// Whether free space was below the reserve at the last sample; never samples.
    pub(crate) fn holds(&self) -> bool {
        self.sampled.lock().unwrap_or_else(|e| e.into_inner()).below
    }

    /// Whether free space is below the reserve, sampling the filesystem when the last sample
    /// is a second old or more (the gauges in `metrics` follow each sample).
    pub(crate) fn below(&self, metrics: &Metrics) -> bool {
        self.below_at(Instant::now(), metrics, || filesystem_space(&self.data_dir))
    }

    /// [`DiskReserve::below`] at `now`, measuring with `measure`.
    fn below_at(
        &self,
        now: Instant,
        metrics: &Metrics,
        measure: impl FnOnce() -> io::Result<Space>,
    ) -> bool {
        let mut sampled = self.sampled.lock().unwrap_or_else(|e| e.into_inner());
        if sampled
            .at
            .is_some_and(|at| now.saturating_duration_since(at) < SAMPLE_EVERY)
        {
            return sampled.below;
        }
        sampled.at = Some(now);
        let space = match measure() {
            Ok(space) => space,
            Err(e) => {
                if !sampled.failing {
                    tracing::warn!(error = %e, "cannot read the data folder's free space");
                }
                sampled.failing = true;
                return sampled.below;
            }
        };
        sampled.failing = false;
        let below = self.reserve > 0 && space.free < self.reserve;
        let (free_mb, reserve_mb) = (space.free >> 20, self.reserve >> 20);
        if below && !sampled.below {
            tracing::error!(
                free_mb,
                reserve_mb,
                "free disk space is below [storage] free_space_reserve_mb: no new reports \
                 are taken (503 insufficient-storage) until space is freed"
            );
        } else if !below && sampled.below {
            tracing::info!(
                free_mb,
                reserve_mb,
                "free disk space is above the reserve again: new reports are taken"
            );
        }
        sampled.below = below;
        metrics.disk(space);
        metrics.disk_reserve(self.reserve, below);
        below
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    const MB: u64 = 1 << 20;

    fn space(free: u64) -> io::Result<Space> {
        Ok(Space {
            free,
            size: 100 * MB,
        })
    }

    fn gauge(metrics: &Metrics, name: &str) -> Option<f64> {
        crate::metrics::tests::sample(&metrics.render(), name)
    }

    #[test]
    fn below_the_reserve_refuses_and_the_filesystem_is_asked_at_most_once_a_second() {
        let reserve = DiskReserve::new(PathBuf::from("/unused"), 10);
        let metrics = Metrics::new();
        let calls = Cell::new(0);
        let measure = |free| {
            calls.set(calls.get() + 1);
            space(free)
        };
        let t0 = Instant::now();
        assert!(!reserve.below_at(t0, &metrics, || measure(11 * MB)));
        assert_eq!(gauge(&metrics, "ephemera_disk_reserve_active"), Some(0.0));
        assert_eq!(
            gauge(&metrics, "ephemera_disk_reserve_bytes"),
            Some((10 * MB) as f64)
        );
        // Within the second: the last answer, no new sample.
        assert!(
            !reserve.below_at(t0 + Duration::from_millis(999), &metrics, || {
                measure(MB)
            })
        );
        assert_eq!(calls.get(), 1);
        // A second later the filesystem is asked again.
        assert!(reserve.below_at(t0 + SAMPLE_EVERY, &metrics, || measure(10 * MB - 1)));
        assert_eq!(calls.get(), 2);
        assert_eq!(gauge(&metrics, "ephemera_disk_reserve_active"), Some(1.0));
        assert_eq!(
            gauge(&metrics, "ephemera_data_dir_free_bytes"),
            Some((10 * MB - 1) as f64)
        );
        // A failed sample keeps the state; space freed lifts it.
        assert!(reserve.below_at(t0 + 2 * SAMPLE_EVERY, &metrics, || Err(
            io::ErrorKind::NotFound.into()
        )));
        assert!(!reserve.below_at(t0 + 3 * SAMPLE_EVERY, &metrics, || measure(10 * MB)));
        assert_eq!(gauge(&metrics, "ephemera_disk_reserve_active"), Some(0.0));
    }

    #[test]
    fn a_reserve_of_zero_is_off() {
        let reserve = DiskReserve::new(PathBuf::from("/unused"), 0);
        let metrics = Metrics::new();
        assert!(!reserve.below_at(Instant::now(), &metrics, || space(0)));
        assert_eq!(gauge(&metrics, "ephemera_disk_reserve_bytes"), Some(0.0));
    }

    #[test]
    fn a_real_filesystem_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        let space = filesystem_space(dir.path()).unwrap();
        assert!(space.size > 0 && space.free <= space.size, "{space:?}");
        assert!(filesystem_space(&dir.path().join("missing")).is_err());
        // A reserve larger than any disk is always below; the gauges show the real figures.
        let reserve = DiskReserve::new(dir.path().to_owned(), 1 << 30);
        let metrics = Metrics::new();
        assert!(reserve.below(&metrics));
        let free = gauge(&metrics, "ephemera_data_dir_free_bytes").unwrap();
        let size = gauge(&metrics, "ephemera_data_dir_size_bytes").unwrap();
        assert!(size > 0.0 && free <= size);
    }
}
