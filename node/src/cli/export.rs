//! `export verify`: checks a GAEN export zip against a PEM public key.

use std::io::Write;

use super::{CliError, ExportVerifyArgs};

/// Verifies the zip's `export.sig` over `export.bin` and prints
/// `<key hex> <rolling start> <rolling period>` per key.
///
/// # Errors
/// [`CliError::Export`] with a clear reason when the signature or format is wrong.
pub fn export_verify(args: &ExportVerifyArgs, out: &mut impl Write) -> Result<(), CliError> {
    let _ = (args, out);
    Err(CliError::Export(
        "not built yet: waiting for proto's gaen export code".to_owned(),
    ))
}
