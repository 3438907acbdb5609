//! `derive`: identifiers a phone would broadcast, for test vectors and outside tools.
//!
//! Output goes to an `impl Write` (stdout in the binary): lower-case hex, one line per
//! interval, nothing else.

use std::io::Write;

use clap::{Args, Subcommand};
use ephemera_proto::IntervalNumber;
use ephemera_proto::gaen::{Metadata, TemporaryExposureKey};
use ephemera_proto::pet::{EphemeralPublicKey, KeyRatchet, RATCHET_BYTES, Role, encounter_tokens};

use super::CliError;

/// Most intervals one command prints (a year of 10-minute intervals).
pub const MAX_COUNT: u32 = 144 * 366;

/// `derive` arguments.
#[derive(Debug, Args)]
pub struct DeriveArgs {
    /// The scheme.
    #[command(subcommand)]
    pub scheme: DeriveScheme,
}

/// `derive` subcommands.
#[derive(Debug, Subcommand)]
pub enum DeriveScheme {
    /// GAEN v1.2: prints `<interval> <rpi hex>` per interval, or `<interval> <rpi hex>
    /// <aem hex>` when --metadata is given.
    Gaen {
        /// Temporary Exposure Key, 32 hex characters.
        #[arg(long)]
        tek: String,
        /// First interval (unix seconds / 600).
        #[arg(long)]
        interval: u32,
        /// Number of consecutive intervals.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Bluetooth metadata to encrypt, 8 hex characters (e.g. 40080000).
        #[arg(long)]
        metadata: Option<String>,
    },
    /// pet: prints `<interval> <public key hex>` per interval: the ephemeral X25519 key a
    /// phone whose key ratchet stands at --interval with this state broadcasts then and
    /// at the next intervals of the same UTC day (`docs/PROTOCOL.md` §3.1). With --peer,
    /// each line goes on with `<role> <own token hex> <peer token hex>` for an encounter
    /// with that heard key (role `low` or `high`: where our key sorts).
    Pet {
        /// The key ratchet's state at --interval, 64 hex characters.
        #[arg(long)]
        state: String,
        /// First interval (unix seconds / 600).
        #[arg(long)]
        interval: u32,
        /// Number of consecutive intervals.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// A heard public key, 64 hex characters.
        #[arg(long)]
        peer: Option<String>,
    },
}

fn hex_arg<const N: usize>(name: &'static str, text: &str) -> Result<[u8; N], CliError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text.trim(), &mut out).map_err(|_| CliError::Argument {
        name,
        reason: format!("must be {} hex characters", N * 2),
    })?;
    Ok(out)
}

fn check_count(interval: u32, count: u32) -> Result<(), CliError> {
    if count == 0 || count > MAX_COUNT || interval.checked_add(count - 1).is_none() {
        return Err(CliError::Argument {
            name: "--count",
            reason: format!("must be 1..={MAX_COUNT} and stay within u32 intervals"),
        });
    }
    Ok(())
}

fn io(source: std::io::Error) -> CliError {
    CliError::Io {
        what: "writing output".to_owned(),
        source,
    }
}

/// Runs `derive`, writing to `out`.
///
/// # Errors
/// [`CliError::Argument`] for malformed hex or counts, [`CliError::Io`] on write errors.
pub fn derive(args: &DeriveArgs, out: &mut impl Write) -> Result<(), CliError> {
    match &args.scheme {
        DeriveScheme::Gaen {
            tek,
            interval,
            count,
            metadata,
        } => {
            let tek = TemporaryExposureKey(hex_arg::<16>("--tek", tek)?);
            let metadata = metadata
                .as_deref()
                .map(|m| hex_arg::<4>("--metadata", m).map(Metadata))
                .transpose()?;
            write_gaen(out, &tek, *interval, *count, metadata.as_ref())
        }
        DeriveScheme::Pet {
            state,
            interval,
            count,
            peer,
        } => {
            let mut stored = [0u8; RATCHET_BYTES];
            stored[..4].copy_from_slice(&interval.to_le_bytes());
            stored[4..].copy_from_slice(&hex_arg::<32>("--state", state)?);
            let mut ratchet = KeyRatchet::from_bytes(&stored);
            let peer = peer
                .as_deref()
                .map(|p| hex_arg::<32>("--peer", p).map(EphemeralPublicKey))
                .transpose()?;
            write_pet(out, &mut ratchet, *count, peer.as_ref())
        }
    }
}

/// Writes `<interval> <rpi hex>[ <aem hex>]` for `count` intervals from `interval`.
///
/// # Errors
/// [`CliError::Argument`] for a bad count, [`CliError::Io`] on write errors.
pub fn write_gaen(
    out: &mut impl Write,
    tek: &TemporaryExposureKey,
    interval: u32,
    count: u32,
    metadata: Option<&Metadata>,
) -> Result<(), CliError> {
    check_count(interval, count)?;
    let rpik = tek.rpik();
    let aemk = metadata.map(|_| tek.aemk());
    for i in interval..=interval + (count - 1) {
        let rpi = rpik.rpi(IntervalNumber(i));
        match (metadata, &aemk) {
            (Some(metadata), Some(aemk)) => {
                let aem = aemk.encrypt(&rpi, metadata);
                writeln!(out, "{i} {} {}", hex::encode(rpi.0), hex::encode(aem.0)).map_err(io)?
            }
            _ => writeln!(out, "{i} {}", hex::encode(rpi.0)).map_err(io)?,
        }
    }
    Ok(())
}

/// Writes `<interval> <public key hex>[ <role> <own token> <peer token>]` for `count`
/// intervals from `interval`.
///
/// # Errors
/// [`CliError::Argument`] for a bad count or a peer key that yields no tokens (our own key,
/// a low-order point), [`CliError::Io`] on write errors.
pub fn write_pet(
    out: &mut impl Write,
    ratchet: &mut KeyRatchet,
    count: u32,
    peer: Option<&EphemeralPublicKey>,
) -> Result<(), CliError> {
    let interval = ratchet.interval().0;
    check_count(interval, count)?;
    for i in interval..=interval + (count - 1) {
        ratchet
            .advance_to(IntervalNumber(i))
            .map_err(|e| CliError::Argument {
                name: "--count",
                reason: format!("{e}: a ratchet derives the keys of its own UTC day only"),
            })?;
        let pair = ratchet.key_pair();
        let public = hex::encode(pair.public().0);
        match peer {
            None => writeln!(out, "{i} {public}").map_err(io)?,
            Some(peer) => {
                let tokens = encounter_tokens(&pair, peer).map_err(|e| CliError::Argument {
                    name: "--peer",
                    reason: e.to_string(),
                })?;
                let role = match tokens.role {
                    Role::Low => "low",
                    Role::High => "high",
                };
                writeln!(
                    out,
                    "{i} {public} {role} {} {}",
                    hex::encode(tokens.own.0),
                    hex::encode(tokens.peer.0)
                )
                .map_err(io)?
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Google's Exposure Notification Cryptography v1.2 test vector (TestVectors.h):
    /// TEK 75c734c6dd1a782de7a965da5eb93125, rolling start 2642976, metadata 40080000.
    #[test]
    fn gaen_output_matches_googles_test_vector_byte_for_byte() {
        let tek = TemporaryExposureKey(
            hex_arg::<16>("--tek", "75c734c6dd1a782de7a965da5eb93125").unwrap(),
        );
        let mut out = Vec::new();
        write_gaen(
            &mut out,
            &tek,
            2_642_976,
            2,
            Some(&Metadata([0x40, 0x08, 0x00, 0x00])),
        )
        .unwrap();
        assert_eq!(
            out,
            b"2642976 8be6cd371c5c891604bfbe49df845096 72033874\n\
              2642977 3c9a1de5dd6b02afa7fded7b570b3e56 c29211b1\n"
        );
        let mut out = Vec::new();
        write_gaen(&mut out, &tek, 2_642_976, 1, None).unwrap();
        assert_eq!(out, b"2642976 8be6cd371c5c891604bfbe49df845096\n");
    }

    #[test]
    fn gaen_via_arguments_and_bad_input() {
        let args = DeriveArgs {
            scheme: DeriveScheme::Gaen {
                tek: "75C734C6DD1A782DE7A965DA5EB93125".into(),
                interval: 2_642_976 + 143,
                count: 1,
                metadata: None,
            },
        };
        let mut out = Vec::new();
        derive(&args, &mut out).unwrap();
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with("2643119 "), "{line}");
        assert_eq!(line, line.to_lowercase());
        let bad = DeriveArgs {
            scheme: DeriveScheme::Gaen {
                tek: "xyz".into(),
                interval: 1,
                count: 1,
                metadata: None,
            },
        };
        assert!(matches!(
            derive(&bad, &mut Vec::new()),
            Err(CliError::Argument { name: "--tek", .. })
        ));
        let tek = TemporaryExposureKey([0; 16]);
        assert!(write_gaen(&mut Vec::new(), &tek, u32::MAX, 2, None).is_err());
        assert!(write_gaen(&mut Vec::new(), &tek, 1, 0, None).is_err());
    }

    #[test]
    fn pet_two_phones_derive_mirrored_tokens() {
        let ratchet = |byte: u8| {
            let mut stored = [byte; RATCHET_BYTES];
            stored[..4].copy_from_slice(&100u32.to_le_bytes());
            KeyRatchet::from_bytes(&stored)
        };
        let (a, b) = (ratchet(1), ratchet(2));
        let b_key = b.key_pair().public();
        let a_key = a.key_pair().public();
        let mut a_out = Vec::new();
        write_pet(&mut a_out, &mut ratchet(1), 1, Some(&b_key)).unwrap();
        let mut b_out = Vec::new();
        write_pet(&mut b_out, &mut ratchet(2), 1, Some(&a_key)).unwrap();
        let a_line = String::from_utf8(a_out).unwrap();
        let b_line = String::from_utf8(b_out).unwrap();
        let a_fields: Vec<&str> = a_line.split_whitespace().collect();
        let b_fields: Vec<&str> = b_line.split_whitespace().collect();
        assert_eq!(a_fields.len(), 5);
        assert_eq!(a_fields[1], hex::encode(a_key.0));
        assert_ne!(a_fields[2], b_fields[2], "opposite roles");
        assert_eq!(a_fields[3], b_fields[4], "a's own token is b's peer token");
        assert_eq!(a_fields[4], b_fields[3]);
        let mut keys_only = Vec::new();
        write_pet(&mut keys_only, &mut ratchet(1), 3, None).unwrap();
        let lines: Vec<String> = String::from_utf8(keys_only)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(lines.len(), 3);
        // The phone's own ratchet, stepped, broadcasts the same keys.
        let mut phone = ratchet(1);
        phone.advance_to(IntervalNumber(102)).unwrap();
        assert_eq!(
            lines[2],
            format!("102 {}", hex::encode(phone.key_pair().public().0))
        );
        assert!(
            write_pet(&mut Vec::new(), &mut ratchet(1), 1, Some(&a_key)).is_err(),
            "own key"
        );
        // Past the end of the ratchet's day: refused, not wrapped into the next day.
        assert!(write_pet(&mut Vec::new(), &mut ratchet(1), 144, None).is_err());
    }
}
