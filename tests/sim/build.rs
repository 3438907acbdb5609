//! Records the git commit the simulator is built from (`EPHEMERA_SIM_COMMIT`), so that every
//! run folder can name it (`provenance` in `summary.json`); "unknown" outside a git checkout.

use std::process::Command;

/// `git ARGS` in the crate's folder, trimmed, if git runs and succeeds.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(commit) = git(&["rev-parse", "HEAD"]) {
        // HEAD at build time; uncommitted changes are not marked (build.rs reruns only when
        // HEAD moves, not on every edit).
        println!("cargo:rustc-env=EPHEMERA_SIM_COMMIT={commit}");
    }
    // Rebuild when HEAD moves (a commit, a checkout): HEAD itself and the branch it names.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
    }
    if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        println!("cargo:rerun-if-changed={common}/packed-refs");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={common}/{branch}");
        }
    }
}
