//! What a phone downloads a day at national upload rates (`ephemera-sim project`).
//!
//! A simulated town uploads a handful of reports a day, so its batches are mostly decoy
//! padding. The projection keeps what a run measured that does not depend on the town's
//! size (keys or tokens per upload, the node's boundaries, the phones' sync period) and
//! sizes a day of publication at any upload rate with the node's own code: every boundary
//! of the day gets `uploads × entries per upload / boundaries` real entries, the node
//! core's [`BatchCutter`] splits and pads them, proto signs each batch (the bytes a phone
//! fetches), and the index pages are proto's [`BatchIndex`] as JSON, fetched as the
//! client's sync loop fetches them (a page with the new batches, then the empty page that
//! ends the round; a round with nothing new fetches the empty page only). The node serves
//! batches and index pages as they are: nothing is compressed. A `pet` phone fetches the
//! token filter of each batch instead (publication version 3, `docs/PROTOCOL.md` §6.5),
//! built by the node core's own code; the batches' bytes are kept beside it, as what a
//! phone of version 2 fetches.
//!
//! The cutter splits a boundary into batches of at most `batch_max_entries` real entries,
//! so every full batch of a boundary has the same size: the projection cuts one full batch
//! and the remainder for real and counts the full one as often as the split makes it. With
//! few uploads a boundary (up to 20), padding makes a quiet boundary cost as much as one
//! with a small upload, so the day is the expectation over a Poisson number of uploads a
//! boundary rather than the batch of the mean.

use std::fmt::Write as _;
use std::path::Path;

use ephemera_node_core::Policy;
use ephemera_node_core::publication::{BatchCutter, PublicationKey};
use ephemera_node_core::store::{CutterState, QueueKey, QueuedEntry};
use ephemera_proto::batch::{BatchId, BatchIndex, BatchIndexEntry, BatchSummary, NodeSigningKey};
use ephemera_proto::filter::TokenFilter;
use ephemera_proto::gaen::{DiagnosisKey, TemporaryExposureKey};
use ephemera_proto::pet::EncounterToken;
use ephemera_proto::report::{PublishedToken, ReportType};
use ephemera_proto::upload::UploadId;
use ephemera_proto::{SchemeKind, UnixTime};
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;
use serde::{Deserialize, Serialize};

use super::error::SimError;
use super::rng::{Domain, crypto_rng};
use super::server::INDEX_PAGE;

/// The upload rates the projection is printed at (uploads a day): a small region, a
/// large city, the German app's peak (February 2022, about 358,000 keys a day from about
/// 35,000 positives) and three times that.
pub const RATES: [u64; 4] = [1_000, 10_000, 35_000, 100_000];

/// Up to this many upload slices a boundary (an upload's entries released at one of its
/// boundaries), the projection takes the expectation over a Poisson number of them; above
/// it, the mean.
const POISSON_UP_TO: f64 = 20.0;

/// A boundary the projection cuts at (a Monday, 12:00 UTC, in the simulator's era).
const BOUNDARY: UnixTime = UnixTime(1_700_481_600);

/// What a run published, and how: the inputs of the projection (`summary.json`'s
/// `publication`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublicationStats {
    /// `gaen` or `pet`.
    pub scheme: String,
    /// Days simulated.
    pub days: u32,
    /// App users.
    pub phones: u64,
    /// Accepted uploads.
    pub uploads: u64,
    /// Keys (`gaen`) or tokens (`pet`) they held.
    pub entries: u64,
    /// Uploads whose reported window lies inside the run (a phone started at day 0 has no
    /// history before it, so earlier windows are short of entries).
    pub full_window_uploads: u64,
    /// Entries of those uploads.
    pub full_window_entries: u64,
    /// Hours between the node's batch boundaries.
    pub batch_hours: u32,
    /// Entries a batch section is padded to.
    pub min_batch_entries: usize,
    /// Hours between a phone's syncs.
    pub sync_hours: u32,
    /// Batches the node published.
    pub batches: u64,
    /// Bytes of those batches.
    pub batch_bytes: u64,
    /// Index pages and batches a phone downloaded per day, measured.
    pub bytes_downloaded_per_phone_per_day: f64,
}

impl PublicationStats {
    /// The scheme.
    ///
    /// # Errors
    /// [`SimError::Scenario`] for a name that is no scheme.
    pub fn kind(&self) -> Result<SchemeKind, SimError> {
        match self.scheme.as_str() {
            "gaen" => Ok(SchemeKind::Gaen),
            "pet" => Ok(SchemeKind::Pet),
            other => Err(SimError::Scenario(format!("unknown scheme {other:?}"))),
        }
    }

    /// Entries per upload in the steady state: the mean of the uploads whose window lies
    /// inside the run, or of all uploads when none does.
    pub fn entries_per_upload(&self) -> f64 {
        if self.full_window_uploads > 0 {
            self.full_window_entries as f64 / self.full_window_uploads as f64
        } else {
            self.entries as f64 / self.uploads.max(1) as f64
        }
    }

    /// Uploads a day the run itself had.
    pub fn uploads_per_day(&self) -> f64 {
        self.uploads as f64 / f64::from(self.days.max(1))
    }
}

/// One scheme's daily download at one upload rate.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Download {
    /// `gaen` or `pet`.
    pub scheme: String,
    /// Uploads a day.
    pub uploads_per_day: f64,
    /// Keys or tokens per upload.
    pub entries_per_upload: f64,
    /// Real entries published a day.
    pub entries_per_day: u64,
    /// Batches a day.
    pub batches_per_day: u64,
    /// Batch bytes a day (what a phone of version 2 fetches).
    pub batch_bytes: u64,
    /// Token filter bytes a day (`pet`: what a phone of version 3 fetches instead).
    pub filter_bytes: Option<u64>,
    /// Index page bytes a phone fetches a day.
    pub index_bytes: u64,
}

impl Download {
    /// Everything a phone fetches a day: filters where there are, else batches, and the
    /// index.
    pub fn total_bytes(&self) -> u64 {
        self.filter_bytes.unwrap_or(self.batch_bytes) + self.index_bytes
    }

    /// What a phone of version 2 fetches a day: batches and the index.
    pub fn batch_total_bytes(&self) -> u64 {
        self.batch_bytes + self.index_bytes
    }
}

/// The projection of both schemes at [`RATES`], with the check against the runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Projection {
    /// Per rate: `gaen`, then `pet`.
    pub rows: Vec<(Download, Download)>,
    /// Per run: the projection at the run's own rate and entries per upload, and what
    /// the run's phones measured.
    pub checks: Vec<(Download, f64)>,
}

/// One batch of a projected boundary: its index entry (its size included) and the size of
/// its token filter, when it has one.
#[derive(Clone, Debug)]
struct CutBatch {
    entry: BatchIndexEntry,
    filter: Option<u64>,
}

/// Cuts and signs one boundary holding `entries` real entries of `scheme` with the node
/// core's cutter, as version 2 (chained) batches, and builds the token filter of each batch
/// with tokens.
fn cut_boundary(
    cutter: &BatchCutter,
    scheme: SchemeKind,
    entries: usize,
    key: &NodeSigningKey,
    rng: &mut ChaCha20Rng,
) -> Vec<CutBatch> {
    let group: Vec<QueuedEntry> = (0..entries)
        .map(|_| {
            let days_back = 1 + rng.next_u32() % 10;
            match scheme {
                SchemeKind::Gaen => QueuedEntry::Key(DiagnosisKey {
                    key: TemporaryExposureKey::generate(rng),
                    rolling_start: BOUNDARY.day().minus(days_back).first_interval(),
                    rolling_period: 144,
                    report_type: ReportType::ConfirmedTest,
                    days_since_onset: Some(0),
                }),
                SchemeKind::Pet => {
                    let mut token = [0u8; 16];
                    rng.fill_bytes(&mut token);
                    QueuedEntry::Token(PublishedToken {
                        day: BOUNDARY.day().minus(days_back),
                        token: EncounterToken(token),
                    })
                }
            }
        })
        .collect();
    let queued = vec![(
        QueueKey {
            // Released long before any boundary the cutter may pick.
            release_at: UnixTime(0),
            upload: UploadId([0; 32]),
        },
        group,
    )];
    let cut = cutter
        .cut(
            &CutterState::default(),
            queued,
            BOUNDARY,
            &PublicationKey::generate(rng),
        )
        .expect("a fresh cutter has the boundary due");
    cut.batches
        .into_iter()
        .map(|batch| {
            let mut contents = batch.contents;
            contents.previous = Some(BatchId::NONE);
            let (keys, tokens) = (
                contents.diagnosis_keys.len() as u32,
                contents.tokens.len() as u32,
            );
            let (sequence, created_at) = (contents.sequence, contents.created_at);
            let token_list: Vec<EncounterToken> = contents.tokens.iter().map(|t| t.token).collect();
            let signed = contents.sign(key);
            let summary = BatchSummary {
                id: signed.id(),
                node: key.public_key().key_id(),
                sequence,
                created_at,
                previous: Some(BatchId::NONE),
                keys,
                tokens,
            };
            let filter = (tokens > 0).then(|| {
                TokenFilter::build(&summary, &token_list, key, rng)
                    .expect("distinct random tokens build a filter")
                    .len() as u64
            });
            CutBatch {
                entry: BatchIndexEntry {
                    id: signed.id(),
                    sequence,
                    created_at,
                    size: signed.bytes().len() as u64,
                    keys,
                    tokens,
                },
                filter,
            }
        })
        .collect()
}

/// The batches of one boundary with `entries` real entries: one full batch and the
/// remainder cut for real, the full one repeated as the split repeats it.
fn boundary_batches(
    cutter: &BatchCutter,
    scheme: SchemeKind,
    entries: usize,
    key: &NodeSigningKey,
    rng: &mut ChaCha20Rng,
) -> Vec<CutBatch> {
    let max = cutter.max_entries.max(1);
    let (full, rest) = (entries / max, entries % max);
    let mut batches = Vec::new();
    if full > 0 {
        let one = cut_boundary(cutter, scheme, max, key, rng);
        for _ in 0..full {
            batches.extend(one.iter().cloned());
        }
    }
    if rest > 0 || full == 0 {
        batches.extend(cut_boundary(cutter, scheme, rest, key, rng));
    }
    for (i, b) in batches.iter_mut().enumerate() {
        b.entry.sequence = BOUNDARY.0 * 1000 + i as u64;
    }
    batches
}

/// Bytes of the index pages one sync round fetches when `batches` are new: full pages
/// of [`INDEX_PAGE`] entries, then the empty page that ends the round (only that one
/// when nothing is new).
fn round_index_bytes(batches: &[BatchIndexEntry]) -> u64 {
    let page = |entries: &[BatchIndexEntry], cursor: u64| {
        let index = BatchIndex {
            batches: entries.to_vec(),
            next_cursor: entries.last().map_or(cursor, |e| e.sequence),
            key_rollovers: Vec::new(),
            head: None,
            token_filters: true,
            sunset: None,
        };
        serde_json::to_vec(&index).expect("index serialises").len() as u64
    };
    let cursor = batches.last().map_or(BOUNDARY.0 * 1000, |b| b.sequence);
    batches
        .chunks(INDEX_PAGE)
        .map(|chunk| page(chunk, cursor))
        .sum::<u64>()
        + page(&[], cursor)
}

/// One scheme's daily download with `uploads_per_day` uploads of `entries_per_upload`
/// entries each, under the node and sync settings of `stats`.
///
/// # Errors
/// [`SimError::Scenario`] for an unknown scheme or settings the node refuses.
pub fn daily_download(
    stats: &PublicationStats,
    uploads_per_day: f64,
    entries_per_upload: f64,
) -> Result<Download, SimError> {
    let scheme = stats.kind()?;
    if stats.batch_hours == 0 || !24u32.is_multiple_of(stats.batch_hours) || stats.sync_hours == 0 {
        return Err(SimError::Scenario(
            "batch_hours must divide 24 and sync_hours be positive".to_owned(),
        ));
    }
    let policy = Policy {
        accept_schemes: vec![scheme],
        batch_period_seconds: u64::from(stats.batch_hours) * 3600,
        batch_min_entries: stats.min_batch_entries,
        ..Policy::default()
    };
    let cutter = BatchCutter::from_policy(&policy);
    let mut rng = crypto_rng(0, Domain::Projection, &[]);
    let key = NodeSigningKey::generate(&mut rng);
    let boundaries = u64::from(24 / stats.batch_hours);
    let entries_per_day = (uploads_per_day * entries_per_upload).round() as u64;
    let per_boundary = (entries_per_day as f64 / boundaries as f64).round() as usize;
    let batches = boundary_batches(&cutter, scheme, per_boundary, &key, &mut rng);
    // Few uploads a boundary: the padding floor and buckets make the mean batch larger
    // than the batch of the mean, so take the expectation over a Poisson number of
    // uploads. Each upload's entries are released over the spread's classes of
    // boundaries, so a boundary takes a Poisson number of slices of an upload.
    let classes = (policy.release_spread_seconds / policy.batch_period_seconds).max(1) as f64;
    let lambda = uploads_per_day / boundaries as f64 * classes;
    let entries_per_slice = entries_per_upload / classes;
    let sizes = |cut: &[CutBatch]| {
        let batches = cut.iter().map(|b| b.entry.size).sum::<u64>() as f64;
        let filters = cut
            .iter()
            .map(|b| b.filter.unwrap_or(b.entry.size))
            .sum::<u64>() as f64;
        (batches, filters)
    };
    let (boundary_bytes, boundary_filter_bytes, boundary_batches_n) = if lambda <= POISSON_UP_TO {
        let mut expected = (0.0, 0.0, 0.0);
        let mut p = (-lambda).exp();
        let last = (lambda + 10.0 * lambda.sqrt() + 10.0).ceil() as usize;
        for k in 0..=last {
            if k > 0 {
                p *= lambda / k as f64;
            }
            let entries = (k as f64 * entries_per_slice).round() as usize;
            let cut = boundary_batches(&cutter, scheme, entries, &key, &mut rng);
            let (batch_bytes, filter_bytes) = sizes(&cut);
            expected.0 += p * batch_bytes;
            expected.1 += p * filter_bytes;
            expected.2 += p * cut.len() as f64;
        }
        expected
    } else {
        let (batch_bytes, filter_bytes) = sizes(&batches);
        (batch_bytes, filter_bytes, batches.len() as f64)
    };

    // Sync rounds a day; each boundary's batches are new to the first round after it.
    let rounds = 24.0 / f64::from(stats.sync_hours);
    let with_news = rounds.min(boundaries as f64);
    let per_round = ((batches.len() as u64 * boundaries) as f64 / with_news).round() as usize;
    let news: Vec<BatchIndexEntry> = (0..per_round)
        .map(|i| {
            let mut b = batches[i % batches.len()].entry.clone();
            b.sequence = BOUNDARY.0 * 1000 + i as u64;
            b
        })
        .collect();
    let index = with_news * round_index_bytes(&news) as f64
        + (rounds - with_news) * round_index_bytes(&[]) as f64;
    Ok(Download {
        scheme: stats.scheme.clone(),
        uploads_per_day,
        entries_per_upload,
        entries_per_day,
        batches_per_day: (boundary_batches_n * boundaries as f64).round() as u64,
        batch_bytes: (boundary_bytes * boundaries as f64).round() as u64,
        filter_bytes: (scheme == SchemeKind::Pet)
            .then(|| (boundary_filter_bytes * boundaries as f64).round() as u64),
        index_bytes: index.round() as u64,
    })
}

/// Projects both schemes at [`RATES`] from the publication statistics of a `gaen` and a
/// `pet` run, and checks the model against each run at the run's own rate.
///
/// # Errors
/// As [`daily_download`]; [`SimError::Scenario`] when `gaen` or `pet` is of the other
/// scheme.
pub fn project(gaen: &PublicationStats, pet: &PublicationStats) -> Result<Projection, SimError> {
    if gaen.kind()? != SchemeKind::Gaen || pet.kind()? != SchemeKind::Pet {
        return Err(SimError::Scenario(
            "project needs a gaen run and a pet run".to_owned(),
        ));
    }
    let mut rows = Vec::new();
    for rate in RATES {
        rows.push((
            daily_download(gaen, rate as f64, gaen.entries_per_upload())?,
            daily_download(pet, rate as f64, pet.entries_per_upload())?,
        ));
    }
    let mut checks = Vec::new();
    for stats in [gaen, pet] {
        let all = stats.entries as f64 / stats.uploads.max(1) as f64;
        checks.push((
            daily_download(stats, stats.uploads_per_day(), all)?,
            stats.bytes_downloaded_per_phone_per_day,
        ));
    }
    Ok(Projection { rows, checks })
}

fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

impl Projection {
    /// The table (Markdown), then the check against the runs.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| uploads/day | scheme | entries/upload | entries/day | batches/day | batches MB | filters MB | index kB | MB per phone per day | pet / gaen | with batches (version 2) |\n\
             | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for (gaen, pet) in &self.rows {
            for d in [gaen, pet] {
                let ratio = |bytes: u64| {
                    if d.scheme == "pet" {
                        format!("{:.2}×", bytes as f64 / gaen.total_bytes().max(1) as f64)
                    } else {
                        String::new()
                    }
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} | {} | {} | {:.2} | {} | {:.1} | {:.2} | {} | {} |",
                    d.uploads_per_day,
                    d.scheme,
                    d.entries_per_upload,
                    d.entries_per_day,
                    d.batches_per_day,
                    megabytes(d.batch_bytes),
                    d.filter_bytes
                        .map_or(String::new(), |f| format!("{:.2}", megabytes(f))),
                    d.index_bytes as f64 / 1e3,
                    megabytes(d.total_bytes()),
                    ratio(d.total_bytes()),
                    ratio(d.batch_total_bytes()),
                );
            }
        }
        out.push_str("\nCheck against the runs (the model at each run's own rate):\n\n");
        out.push_str(
            "| scheme | uploads/day | entries/upload | projected bytes/phone/day | measured | measured / projected |\n\
             | --- | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for (d, measured) in &self.checks {
            let _ = writeln!(
                out,
                "| {} | {:.2} | {:.1} | {} | {:.1} | {:.3} |",
                d.scheme,
                d.uploads_per_day,
                d.entries_per_upload,
                d.total_bytes(),
                measured,
                measured / d.total_bytes().max(1) as f64
            );
        }
        out
    }

    /// The rows as CSV.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "uploads_per_day,scheme,entries_per_upload,entries_per_day,batches_per_day,batch_bytes,filter_bytes,index_bytes,total_bytes\n",
        );
        for (gaen, pet) in &self.rows {
            for d in [gaen, pet] {
                let _ = writeln!(
                    out,
                    "{},{},{:.2},{},{},{},{},{},{}",
                    d.uploads_per_day,
                    d.scheme,
                    d.entries_per_upload,
                    d.entries_per_day,
                    d.batches_per_day,
                    d.batch_bytes,
                    d.filter_bytes.map_or(String::new(), |f| f.to_string()),
                    d.index_bytes,
                    d.total_bytes()
                );
            }
        }
        out
    }

    /// MB per phone per day against uploads per day, both on log scales: one polyline per
    /// scheme (SVG written by hand).
    pub fn svg(&self) -> String {
        let (w, h, left, right, top, bottom) = (640.0, 420.0, 70.0, 20.0, 40.0, 50.0);
        let xs: Vec<f64> = self
            .rows
            .iter()
            .map(|(g, _)| g.uploads_per_day.log10())
            .collect();
        let values = self
            .rows
            .iter()
            .flat_map(|(g, p)| [g.total_bytes(), p.total_bytes(), p.batch_total_bytes()])
            .map(|b| megabytes(b).max(1e-3).log10());
        let (lo, hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (y0, y1) = (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
        let (x0, x1) = (
            xs.first().copied().unwrap_or(3.0).floor(),
            xs.last().copied().unwrap_or(5.0).ceil(),
        );
        let px = |x: f64| left + (x - x0) / (x1 - x0).max(1e-9) * (w - left - right);
        let py = |y: f64| h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">Download per phone per day (index + batches or filters, no compression)</text>\n",
            w / 2.0
        );
        let mut y = y0;
        while y <= y1 + 1e-9 {
            let _ = writeln!(
                s,
                "<line x1=\"{left}\" x2=\"{0}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"#ddd\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{4} MB</text>",
                w - right,
                py(y),
                left - 6.0,
                py(y) + 4.0,
                10f64.powi(y as i32)
            );
            y += 1.0;
        }
        for (x, (g, _)) in xs.iter().zip(&self.rows) {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{top}\" y2=\"{1}\" stroke=\"#ddd\"/><text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">{3}</text>",
                px(*x),
                h - bottom,
                h - bottom + 16.0,
                g.uploads_per_day
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">uploads per day (log)</text>",
            (left + w - right) / 2.0,
            h - 12.0
        );
        for (name, colour, pick) in [
            (
                "gaen",
                "#1f77b4",
                (|r: &(Download, Download)| r.0.total_bytes()) as fn(&(Download, Download)) -> u64,
            ),
            ("pet", "#d62728", |r: &(Download, Download)| {
                r.1.total_bytes()
            }),
            (
                "pet, batches (version 2)",
                "#999999",
                |r: &(Download, Download)| r.1.batch_total_bytes(),
            ),
        ] {
            let points: Vec<(f64, f64)> = xs
                .iter()
                .zip(&self.rows)
                .map(|(x, r)| (px(*x), py(megabytes(pick(r)).max(1e-3).log10())))
                .collect();
            let line: Vec<String> = points
                .iter()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = writeln!(
                s,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                line.join(" ")
            );
            for (x, y) in &points {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>"
                );
            }
            if let Some((x, y)) = points.last() {
                let _ = writeln!(
                    s,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"{colour}\">{name}</text>",
                    x - 6.0,
                    y - 6.0
                );
            }
        }
        s.push_str("</svg>\n");
        s
    }

    /// Writes `projection.csv`, `projection.svg` and `projection.md` into `dir`.
    ///
    /// # Errors
    /// [`SimError::Output`] when a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(), SimError> {
        let failed = |path: &Path| {
            let path = path.display().to_string();
            move |e: std::io::Error| SimError::Output {
                path,
                message: e.to_string(),
            }
        };
        std::fs::create_dir_all(dir).map_err(failed(dir))?;
        for (name, text) in [
            ("projection.csv", self.csv()),
            ("projection.svg", self.svg()),
            ("projection.md", self.table()),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(failed(&path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(scheme: &str, entries_per_upload: u64) -> PublicationStats {
        PublicationStats {
            scheme: scheme.to_owned(),
            days: 14,
            phones: 1000,
            uploads: 10,
            entries: 10 * entries_per_upload,
            full_window_uploads: 0,
            full_window_entries: 0,
            batch_hours: 6,
            min_batch_entries: 64,
            sync_hours: 4,
            batches: 0,
            batch_bytes: 0,
            bytes_downloaded_per_phone_per_day: 0.0,
        }
    }

    /// With next to nothing uploaded, a day is four all-decoy batches of 64 records (the
    /// frame and version 2 body headers, then 24-byte keys or 20-byte tokens) and six
    /// rounds of index pages; a `pet` phone fetches their four filters instead.
    #[test]
    fn a_quiet_day_is_four_padded_batches() {
        for (scheme, record) in [("gaen", 24), ("pet", 20)] {
            let d = daily_download(&stats(scheme, 5), 0.0, 5.0).unwrap();
            assert_eq!(d.batches_per_day, 4);
            assert_eq!(d.batch_bytes, 4 * (74 + 56 + 64 * record));
            assert!(d.index_bytes > 0);
            assert_eq!(d.filter_bytes.is_some(), scheme == "pet");
        }
        let pet = daily_download(&stats("pet", 5), 0.0, 5.0).unwrap();
        let filters = pet.filter_bytes.unwrap();
        assert!(
            filters * 2 < pet.batch_bytes,
            "{filters} of {}",
            pet.batch_bytes
        );
        assert_eq!(pet.total_bytes(), filters + pet.index_bytes);
    }

    /// Past the node's 100,000 entries a batch, a boundary splits, and the bytes grow
    /// with the entries (20 bytes a token) and the last batch's bucket.
    #[test]
    fn a_busy_boundary_splits_and_grows_linearly() {
        let pet = stats("pet", 100);
        // 4 boundaries × 250,000 tokens: 3 batches each (100,000 + 100,000 + 50,000, the
        // last padded to its bucket, 64 × 1024 = 65,536).
        let d = daily_download(&pet, 10_000.0, 100.0).unwrap();
        assert_eq!(d.entries_per_day, 1_000_000);
        assert_eq!(d.batches_per_day, 12);
        assert_eq!(d.batch_bytes, 12 * (74 + 56) + 4 * (200_000 + 65_536) * 20);
        // The filters take 4.5 to 5 bytes a token (and a 186-byte frame and header each).
        let tokens = 4 * (200_000 + 65_536);
        let per_token = (d.filter_bytes.unwrap() - 12 * 186) as f64 / f64::from(tokens);
        assert!((4.5..5.0).contains(&per_token), "{per_token}");
        // 4 × 500,000: 5 full batches each, no padding.
        let more = daily_download(&pet, 20_000.0, 100.0).unwrap();
        assert_eq!(more.batch_bytes, 20 * (74 + 56) + 2_000_000 * 20);
    }

    #[test]
    fn project_wants_one_run_of_each_scheme() {
        let (gaen, pet) = (stats("gaen", 6), stats("pet", 150));
        assert!(project(&pet, &gaen).is_err());
        let p = project(&gaen, &pet).unwrap();
        assert_eq!(p.rows.len(), RATES.len());
        assert!(
            p.rows
                .iter()
                .all(|(g, q)| q.total_bytes() > g.total_bytes())
        );
        assert!(p.svg().contains("<polyline"));
        assert_eq!(p.csv().lines().count(), 1 + 2 * RATES.len());
    }
}
