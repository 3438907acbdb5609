//! `venue create`: a venue's printable entry QR code, its QR text, its trace code and an
//! instruction sheet, written into a new folder (`crate::venue`). A venue runs it offline
//! on its own machine with the authority's venue key it fetched (`--authority-key`); an
//! operator at the authority may read the key from a node's data folder instead. Nothing
//! is written anywhere but the output folder, and the trace code only to its 0600 file.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use ephemera_node_core::keys::{NodeKeys, venue_key};
use ephemera_proto::sealed::SealingPublicKey;
use ephemera_proto::signing::Ed25519PublicKey;
use ephemera_proto::venue::{VenueError, VenueKeyAnnouncement};

use super::users::stdout;
use super::{CliError, VenueCommand, VenueCreateArgs, node_config};
use crate::clock::civil::{format_date, parse_date};
use crate::clock::{Clock, SystemClock};
use crate::node::NodeError;
use crate::venue::{self, NewVenue, instruction_sheet};

/// The files `venue create` writes into its folder.
pub const QR_SVG_FILE: &str = "entry-qr.svg";
/// The QR code's text.
pub const QR_TEXT_FILE: &str = "entry-qr.txt";
/// The trace code's text (mode 0600).
pub const TRACE_CODE_FILE: &str = "trace-code.txt";
/// The instruction sheet.
pub const INSTRUCTIONS_FILE: &str = "instructions.txt";

/// The largest key file read: a `GET /v1/venue-key` answer is about 300 bytes.
const MAX_KEY_FILE: u64 = 4096;

/// Runs a `venue` subcommand.
///
/// # Errors
/// [`CliError::Argument`] for a bad key, text or date; [`CliError::Io`] when the folder
/// exists and is not empty or a file cannot be written; key and config errors when the key
/// comes from a data folder.
pub fn venue(command: &VenueCommand, out: &mut impl Write) -> Result<(), CliError> {
    match command {
        VenueCommand::Create(args) => create(args, out),
    }
}

fn create(args: &VenueCreateArgs, out: &mut impl Write) -> Result<(), CliError> {
    let (authority, source) = authority_key(args)?;
    let day = |name: &'static str, text: &Option<String>| match text {
        None => Ok(None),
        Some(text) => parse_date(text).map(Some).ok_or(CliError::Argument {
            name,
            reason: "must be a date YYYY-MM-DD".to_owned(),
        }),
    };
    let (from, until) = venue::validity(
        day("--valid-from", &args.valid_from)?,
        day("--valid-until", &args.valid_until)?,
        SystemClock.now().day(),
    )
    .map_err(argument)?;
    let made = venue::create(
        &authority,
        &args.description,
        &args.address,
        from,
        until,
        &mut rand::rng(),
    )
    .map_err(argument)?;
    write_folder(&args.out, &made)?;
    writeln!(
        out,
        "venue written to {}: {QR_SVG_FILE} (print it), {QR_TEXT_FILE}, {INSTRUCTIONS_FILE}, \
         {TRACE_CODE_FILE} (keep it offline)\nvalid {} to {} (UTC days)\n{source}\nQR text: {}",
        args.out.display(),
        format_date(made.entry.valid_from().day()),
        format_date(made.entry.valid_until().day()),
        made.qr_text,
    )
    .map_err(stdout)
}

/// The authority's venue key, and a line saying where it came from.
fn authority_key(args: &VenueCreateArgs) -> Result<(SealingPublicKey, String), CliError> {
    let Some(given) = &args.authority_key else {
        let config = node_config(&args.folder.config, &args.folder.data_dir)?;
        let keys = NodeKeys::load(&config.data_dir).map_err(NodeError::from)?;
        return Ok((
            venue_key(&keys.pepper).public_key(),
            format!(
                "authority venue key from the data folder {}",
                config.data_dir.display()
            ),
        ));
    };
    if let Some(key) = hex_key(given) {
        return Ok((key, "authority venue key as given".to_owned()));
    }
    let path = Path::new(given);
    let text = read_small(path)?;
    if let Some(key) = hex_key(&text) {
        return Ok((key, format!("authority venue key from {}", path.display())));
    }
    let announcement: VenueKeyAnnouncement =
        serde_json::from_str(&text).map_err(|_| CliError::Argument {
            name: "--authority-key",
            reason: "neither 64 hex digits nor a file holding them or the JSON of \
                     GET /v1/venue-key"
                .to_owned(),
        })?;
    let pinned = match &args.authority {
        Some(hex) => Some(Ed25519PublicKey::from_hex(hex).ok_or(CliError::Argument {
            name: "--authority",
            reason: "must be the authority key, 64 hex digits".to_owned(),
        })?),
        None => None,
    };
    let signer = match pinned {
        Some(key) => key,
        None => announcement.named_authority().map_err(signature)?,
    };
    let key = announcement.verify(&signer).map_err(signature)?;
    let source = if pinned.is_some() {
        format!(
            "authority venue key from {}, signed by the authority key given",
            path.display()
        )
    } else {
        format!(
            "authority venue key from {}, signed by authority key {}: check it against \
             the key your health authority publishes, or pass it as --authority",
            path.display(),
            signer.to_hex()
        )
    };
    Ok((key, source))
}

/// 64 hex digits (surrounding whitespace ignored) as an X25519 key.
fn hex_key(text: &str) -> Option<SealingPublicKey> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key).ok()?;
    Some(SealingPublicKey(key))
}

fn read_small(path: &Path) -> Result<String, CliError> {
    let io = |source| CliError::Io {
        what: format!("reading the --authority-key file {}", path.display()),
        source,
    };
    let len = fs::metadata(path).map_err(io)?.len();
    if len > MAX_KEY_FILE {
        return Err(CliError::Argument {
            name: "--authority-key",
            reason: format!("{} is {len} bytes, at most {MAX_KEY_FILE}", path.display()),
        });
    }
    let bytes = fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|_| CliError::Argument {
        name: "--authority-key",
        reason: format!("{} is not text", path.display()),
    })
}

fn signature(error: ephemera_proto::sealed::AnnouncementError) -> CliError {
    CliError::Argument {
        name: "--authority-key",
        reason: format!("the venue key file does not verify: {error}"),
    }
}

fn argument(error: VenueError) -> CliError {
    let name = match &error {
        VenueError::TooLong {
            field: "address", ..
        } => "--address",
        VenueError::TooLong { .. } => "--description",
        VenueError::BadTimeRange => "--valid-until",
        _ => "--authority-key",
    };
    CliError::Argument {
        name,
        reason: error.to_string(),
    }
}

/// Writes the venue into `dir`, made if missing and refused unless empty: a trace code is
/// never overwritten. The trace code's file is made with mode 0600, the folder 0700.
fn write_folder(dir: &Path, venue: &NewVenue) -> Result<(), CliError> {
    let io = |what: String| move |source| CliError::Io { what, source };
    if dir.exists() {
        let mut entries = fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))?;
        if entries.next().is_some() {
            return Err(CliError::Io {
                what: format!("writing the venue into {}", dir.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the folder is not empty (a trace code is never overwritten)",
                ),
            });
        }
    } else {
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(io(format!("making {}", dir.display())))?;
    }
    let sheet = instruction_sheet(venue);
    for (name, contents, mode) in [
        (TRACE_CODE_FILE, venue.trace_text.as_bytes(), 0o600),
        (QR_SVG_FILE, venue.qr_svg.as_bytes(), 0o644),
        (QR_TEXT_FILE, venue.qr_text.as_bytes(), 0o644),
        (INSTRUCTIONS_FILE, sheet.as_bytes(), 0o644),
    ] {
        let path = dir.join(name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options
            .open(&path)
            .map_err(io(format!("making {}", path.display())))?;
        file.write_all(contents)
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(())
}
