//! The simulator's errors.

use thiserror::Error;

/// Why a run could not be done.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SimError {
    /// The scenario is invalid.
    #[error("scenario: {0}")]
    Scenario(String),
    /// A phone refused an input (a bug in the simulator or the client).
    #[error("phone {agent}: {message}")]
    Phone {
        /// The agent whose phone failed.
        agent: u32,
        /// What it said.
        message: String,
    },
    /// The in-process authority or node refused something it should have accepted.
    #[error("node: {0}")]
    Node(String),
    /// Writing the output failed.
    #[error("output {path}: {message}")]
    Output {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}
