//! Where a run's outputs come from: the simulator's version and commit, the seed and the
//! command line, written beside the outputs with the effective scenario
//! ([`write_outputs`](crate::write_outputs)).

use std::path::Path;

use serde::Serialize;

use super::error::SimError;

/// The commit the simulator was built from (`git rev-parse HEAD` at build time, by
/// `build.rs`), or `"unknown"` when it was built outside a git checkout.
pub const COMMIT: &str = match option_env!("EPHEMERA_SIM_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// The build and the command behind a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Provenance {
    /// The `ephemera-sim` crate version.
    pub version: &'static str,
    /// The git commit the binary was built from ([`COMMIT`]).
    pub commit: &'static str,
    /// The run's seed.
    pub seed: u64,
    /// The command line of the process that ran it, program name first.
    pub command_line: Vec<String>,
}

impl Provenance {
    /// This build and this process's command line, for a run with `seed`.
    pub fn of_this_process(seed: u64) -> Provenance {
        Provenance {
            version: env!("CARGO_PKG_VERSION"),
            commit: COMMIT,
            seed,
            command_line: std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        }
    }

    /// The provenance as TOML comment lines, to head a scenario file (a scenario file
    /// read back ignores them).
    pub fn as_toml_comment(&self) -> String {
        format!(
            "# Written by ephemera-sim {} (commit {}), seed {}.\n# Command: {}\n",
            self.version,
            self.commit,
            self.seed,
            self.command_line.join(" ").replace(['\n', '\r'], " ")
        )
    }
}

/// Refuses to write into a folder that already holds something: a run never overwrites
/// an earlier one. A missing or empty folder is fine.
///
/// # Errors
/// [`SimError::Output`] naming the folder when it is not empty (or not a folder).
pub fn ensure_fresh(dir: &Path) -> Result<(), SimError> {
    let error = |message: String| SimError::Output {
        path: dir.display().to_string(),
        message,
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(error(
                    "the folder is not empty; ephemera-sim never overwrites an earlier run: \
                     give another --out or remove this folder"
                        .to_owned(),
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(error(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_folder_is_fresh_and_a_used_one_is_refused() {
        let base = std::env::temp_dir().join(format!("ephemera-sim-fresh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        assert!(ensure_fresh(&base).is_ok(), "missing");
        std::fs::create_dir_all(&base).unwrap();
        assert!(ensure_fresh(&base).is_ok(), "empty");
        std::fs::write(base.join("summary.json"), "{}").unwrap();
        let err = ensure_fresh(&base).unwrap_err().to_string();
        assert!(err.contains("never overwrites"), "{err}");
        let file = base.join("summary.json");
        assert!(ensure_fresh(&file).is_err(), "a file is no folder");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn the_provenance_names_this_build_and_comments_out_cleanly() {
        let p = Provenance::of_this_process(42);
        assert_eq!(p.version, env!("CARGO_PKG_VERSION"));
        assert!(!p.commit.is_empty());
        assert!(!p.command_line.is_empty());
        let comment = p.as_toml_comment();
        assert!(comment.lines().all(|l| l.starts_with('#')), "{comment}");
        assert!(comment.contains("seed 42"));
    }
}
