//! Line lists (`--line-lists`): the run's contacts, its infections with their source, and
//! its notifications with their times, as CSV beside the summary (`contacts.csv`,
//! `infections.csv`, `notifications.csv`).
//!
//! Times are seconds after the run's first midnight, so a line list says nothing a summary
//! does not about when the run is set. They cost memory in proportion to the episodes
//! (about 50 bytes each: 10,000 people × 14 days write about 30 MB), so they are kept only
//! when asked for.

use std::fmt::Write as _;
use std::path::Path;

use super::engine::{DAY, RawRun};
use super::error::SimError;
use super::output::io_error;

/// The three line lists of a run, as CSV text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LineLists {
    /// Every episode: day, start, duration, the two people, distance, environment,
    /// layer, and whether each runs the app.
    pub contacts: String,
    /// Every infection: who, when, by whom (empty for the initial cases), in which layer,
    /// whether asymptomatic, and when symptoms began, the positive result came and the
    /// upload went, where they did.
    pub infections: String,
    /// Every notification: who, for which exposure day, and when the phone warned.
    pub notifications: String,
}

/// Writes an optional time, or nothing.
fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

impl LineLists {
    /// The line lists of `run`.
    pub fn of(run: &RawRun) -> LineLists {
        let app = |agent: u32| u8::from(run.pop.agents[agent as usize].app);
        let mut contacts =
            "day,start_s,duration_s,a,b,distance_m,environment,layer,a_app,b_app\n".to_owned();
        for (day, episodes) in run.episodes.iter().enumerate() {
            for e in episodes {
                let _ = writeln!(
                    contacts,
                    "{day},{},{},{},{},{:.2},{},{},{},{}",
                    u64::from(e.start) + day as u64 * u64::from(DAY),
                    e.duration,
                    e.a,
                    e.b,
                    e.distance_m,
                    e.env.name(),
                    e.layer.name(),
                    app(e.a),
                    app(e.b)
                );
            }
        }
        let mut infections =
            "agent,infected_at_s,source,layer,asymptomatic,onset_at_s,result_at_s,upload_at_s\n"
                .to_owned();
        let mut courses: Vec<(u32, &super::epidemic::Course)> = run
            .epidemic
            .courses
            .iter()
            .enumerate()
            .filter_map(|(agent, c)| c.as_ref().map(|c| (agent as u32, c)))
            .collect();
        courses.sort_by_key(|(agent, c)| (c.infected_at, *agent));
        for (agent, c) in courses {
            let _ = writeln!(
                infections,
                "{agent},{},{},{},{},{},{},{}",
                c.infected_at,
                opt(c.source),
                opt(c.layer.map(|l| l.name())),
                u8::from(c.asymptomatic),
                opt(c.onset_at),
                opt(c.result_at),
                opt(c.upload_at)
            );
        }
        // As the summary counts them (exposure days inside the run), in time order.
        let first_day = (run.t0 / u64::from(DAY)) as u32;
        let mut notified: Vec<(u64, u32, u32)> =
            super::metrics::notifications(run, first_day, run.episodes.len() as u32)
                .into_iter()
                .map(|(agent, day, at)| (at.saturating_sub(run.t0), agent, day))
                .collect();
        notified.sort_unstable();
        let mut notifications = "agent,exposure_day,notified_at_s\n".to_owned();
        for (at, agent, day) in notified {
            let _ = writeln!(notifications, "{agent},{day},{at}");
        }
        LineLists {
            contacts,
            infections,
            notifications,
        }
    }

    /// Writes `contacts.csv`, `infections.csv` and `notifications.csv` into `dir`.
    ///
    /// # Errors
    /// [`SimError::Output`] when a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(), SimError> {
        for (name, text) in [
            ("contacts.csv", &self.contacts),
            ("infections.csv", &self.infections),
            ("notifications.csv", &self.notifications),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(io_error(&path))?;
        }
        Ok(())
    }
}
