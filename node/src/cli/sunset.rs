//! `ephemera-node sunset`: the committee's offline work on a sunset order
//! (`node/docs/OPERATIONS.md`, "Sunset"). Nothing here needs a node or a network: keys
//! are made, orders drafted, signed, combined and checked on the members' own machines.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use ephemera_proto::UnixTime;
use ephemera_proto::signing::{Ed25519PublicKey, Ed25519SigningKey};
use ephemera_proto::sunset::{
    SignedDeletionReceipt, SignedSunsetOrder, SunsetCommittee, SunsetOrder, SunsetScope,
};
use zeroize::Zeroizing;

use super::CliError;
use crate::clock::civil;

/// `sunset` subcommands.
#[derive(Debug, Subcommand)]
pub enum SunsetCommand {
    /// Makes a committee member's sunset key: writes its secret to a new file (mode 0600)
    /// and prints the public key for every node's `[sunset] keys` and the app's config.
    Keygen(KeygenArgs),
    /// Writes an order with no approval yet, issued now, for the members to sign.
    Draft(DraftArgs),
    /// Shows the order in words, then adds the key's approval to the file.
    Sign(SignArgs),
    /// Merges members' signed copies of one order into one file.
    Combine(CombineArgs),
    /// Checks an order against a committee and federation, and says what it does.
    Verify(VerifyArgs),
    /// Checks nodes' deletion receipts (from `GET /v1/sunset/receipt`) against an order:
    /// each is signed by the node it names and is for this order; every `--node` given has
    /// one.
    VerifyReceipts(VerifyReceiptsArgs),
}

/// `sunset verify-receipts`.
#[derive(Debug, Args)]
pub struct VerifyReceiptsArgs {
    /// The order file.
    #[arg(long)]
    pub order: PathBuf,
    /// A node that must have erased: its batch public key (hex, `GET /v1/authority`'s
    /// `batch_public_key`). Repeat for each.
    #[arg(long = "node", value_parser = parse_key)]
    pub nodes: Vec<Ed25519PublicKey>,
    /// Receipt files.
    #[arg(required = true)]
    pub receipts: Vec<PathBuf>,
}

/// `sunset keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The new key file (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// The committee and federation an order is for.
#[derive(Debug, Args)]
pub struct CommitteeArgs {
    /// The committee's public keys (hex), as in `[sunset] keys`.
    #[arg(long = "key", required = true, value_parser = parse_key)]
    pub keys: Vec<Ed25519PublicKey>,
    /// How many must approve, as `[sunset] threshold`.
    #[arg(long)]
    pub threshold: u8,
    /// The federation's name (`[federation] region`; "ephemera" when unset).
    #[arg(long)]
    pub federation: String,
}

impl CommitteeArgs {
    fn committee(&self) -> Result<SunsetCommittee, CliError> {
        SunsetCommittee::new(&self.keys, self.threshold).map_err(|e| CliError::Argument {
            name: "--key/--threshold",
            reason: e.to_string(),
        })
    }
}

/// `sunset draft`.
#[derive(Debug, Args)]
pub struct DraftArgs {
    /// The committee and federation.
    #[command(flatten)]
    pub committee: CommitteeArgs,
    /// What it ends: `federation`, or `authority:<hex key>` for one health authority.
    #[arg(long, default_value = "federation")]
    pub scope: String,
    /// When it takes effect: `YYYY-MM-DDTHH:MM:SSZ`, `YYYY-MM-DD` (midnight UTC), or unix
    /// seconds.
    #[arg(long)]
    pub effective: String,
    /// Why, in words, for the public record (at most 1024 bytes).
    #[arg(long)]
    pub reason: String,
    /// The new order file (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// `sunset sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// This member's key file, from `sunset keygen`.
    #[arg(long)]
    pub key: PathBuf,
    /// The order file; the approval is added to it.
    pub order: PathBuf,
}

/// `sunset combine`.
#[derive(Debug, Args)]
pub struct CombineArgs {
    /// Signed copies of one order.
    #[arg(required = true)]
    pub copies: Vec<PathBuf>,
    /// The combined order file (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

/// `sunset verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The committee and federation to check against.
    #[command(flatten)]
    pub committee: CommitteeArgs,
    /// The order file (or a node's `GET /v1/sunset`).
    pub order: PathBuf,
}

/// Runs a `sunset` subcommand at `now`.
///
/// # Errors
/// [`CliError`] naming the file or argument at fault, or why the order does not verify.
pub fn sunset(
    command: &SunsetCommand,
    now: UnixTime,
    out: &mut impl Write,
) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    };
    match command {
        SunsetCommand::Keygen(args) => {
            let key = Ed25519SigningKey::generate(&mut rand::rng());
            let seed = Zeroizing::new(format!("{}\n", hex::encode(key.seed())));
            write_new(&args.out, seed.as_bytes(), true)?;
            writeln!(out, "{}", key.public_key().to_hex()).map_err(io)
        }
        SunsetCommand::Draft(args) => {
            let committee = args.committee.committee()?;
            let order = SunsetOrder {
                federation: args.committee.federation.clone(),
                committee: committee.id(),
                scope: parse_scope(&args.scope)?,
                issued_at: now,
                effective_at: parse_time(&args.effective)?,
                reason: args.reason.clone(),
            };
            let draft = SignedSunsetOrder::draft(order);
            // The checks that need no approval, now, not after three people signed.
            match draft.verify(&committee, &args.committee.federation, now) {
                Ok(_) | Err(ephemera_proto::sunset::SunsetError::BelowThreshold { .. }) => {}
                Err(e) => return Err(refused(e)),
            }
            write_new(&args.out, &draft.to_bytes(), false)?;
            describe(&draft.order, out).map_err(io)
        }
        SunsetCommand::Sign(args) => {
            let mut order = read_order(&args.order)?;
            let key = read_key(&args.key)?;
            describe(&order.order, out).map_err(io)?;
            order.sign(&key);
            replace(&args.order, &order.to_bytes())?;
            writeln!(
                out,
                "approved by {}; {} approval(s) in {}",
                key.public_key().to_hex(),
                order.approvals.len(),
                args.order.display()
            )
            .map_err(io)
        }
        SunsetCommand::Combine(args) => {
            let copies = args
                .copies
                .iter()
                .map(|path| read_order(path))
                .collect::<Result<Vec<_>, _>>()?;
            let combined = SignedSunsetOrder::combine(&copies).map_err(refused)?;
            write_new(&args.out, &combined.to_bytes(), false)?;
            writeln!(
                out,
                "{} approval(s) combined into {}",
                combined.approvals.len(),
                args.out.display()
            )
            .map_err(io)
        }
        SunsetCommand::Verify(args) => {
            let committee = args.committee.committee()?;
            let order = read_order(&args.order)?;
            order
                .verify(&committee, &args.committee.federation, now)
                .map_err(refused)?;
            describe(&order.order, out).map_err(io)?;
            writeln!(
                out,
                "valid: {} of the committee's {} keys approved (threshold {}); order id {}",
                order.approvals.len(),
                committee.keys().len(),
                committee.threshold(),
                order.order.id()
            )
            .map_err(io)
        }
        SunsetCommand::VerifyReceipts(args) => verify_receipts(args, out),
    }
}

/// Checks every receipt, prints each node's figures, and fails on the first that does not
/// stand or on an expected node without one.
fn verify_receipts(args: &VerifyReceiptsArgs, out: &mut impl Write) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    };
    let order = read_order(&args.order)?.order.id();
    let mut seen = Vec::new();
    for path in &args.receipts {
        let bytes = std::fs::read(path).map_err(|source| CliError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        let receipt =
            SignedDeletionReceipt::from_bytes(&bytes).map_err(|e| CliError::Argument {
                name: "receipt",
                reason: format!("{} is not a deletion receipt: {e}", path.display()),
            })?;
        let r = receipt.verify(&order).map_err(|e| CliError::Argument {
            name: "receipt",
            reason: format!("{}: {e}", path.display()),
        })?;
        let erased: Vec<String> = r.erased.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(
            out,
            "{}: node {} erased at {}: {}; {} bytes before, {} after; remaining state {}",
            path.display(),
            r.node.to_hex(),
            civil::format_time(r.erased_at),
            erased.join(", "),
            r.bytes_before,
            r.bytes_after,
            hex::encode(r.remaining_state)
        )
        .map_err(io)?;
        seen.push(r.node);
    }
    if let Some(missing) = args.nodes.iter().find(|n| !seen.contains(n)) {
        return Err(CliError::Argument {
            name: "--node",
            reason: format!("no receipt from node {}", missing.to_hex()),
        });
    }
    writeln!(
        out,
        "all {} receipts verify for order {order}",
        args.receipts.len()
    )
    .map_err(io)
}

/// The order in words, as a member reads it before signing.
fn describe(order: &SunsetOrder, out: &mut impl Write) -> std::io::Result<()> {
    let scope = match order.scope {
        SunsetScope::Federation => "everything, at every node of the federation".to_owned(),
        SunsetScope::Authority(key) => {
            format!("everything of the health authority {}", key.to_hex())
        }
    };
    writeln!(out, "sunset order {}", order.id())?;
    writeln!(out, "  federation:   {}", order.federation)?;
    writeln!(out, "  committee:    {}", order.committee)?;
    writeln!(out, "  ends:         {scope}")?;
    writeln!(
        out,
        "  issued at:    {}",
        civil::format_time(order.issued_at)
    )?;
    writeln!(
        out,
        "  takes effect: {}",
        civil::format_time(order.effective_at)
    )?;
    writeln!(out, "  reason:       {}", order.reason)
}

fn parse_key(text: &str) -> Result<Ed25519PublicKey, String> {
    Ed25519PublicKey::from_hex(text).ok_or_else(|| "must be 64 hex digits".to_owned())
}

fn refused(e: ephemera_proto::sunset::SunsetError) -> CliError {
    CliError::Argument {
        name: "order",
        reason: e.to_string(),
    }
}

fn parse_scope(text: &str) -> Result<SunsetScope, CliError> {
    if text == "federation" {
        return Ok(SunsetScope::Federation);
    }
    text.strip_prefix("authority:")
        .and_then(Ed25519PublicKey::from_hex)
        .map(SunsetScope::Authority)
        .ok_or(CliError::Argument {
            name: "--scope",
            reason: "must be `federation` or `authority:<64 hex digits>`".to_owned(),
        })
}

/// `YYYY-MM-DDTHH:MM:SSZ`, `YYYY-MM-DD` or unix seconds.
fn parse_time(text: &str) -> Result<UnixTime, CliError> {
    let bad = || CliError::Argument {
        name: "--effective",
        reason: "must be YYYY-MM-DDTHH:MM:SSZ, YYYY-MM-DD or unix seconds".to_owned(),
    };
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(UnixTime(seconds));
    }
    let (date, clock) = match text.split_once('T') {
        Some((date, clock)) => (date, Some(clock.strip_suffix('Z').ok_or_else(bad)?)),
        None => (text, None),
    };
    let day = civil::parse_date(date).ok_or_else(bad)?;
    let mut seconds = u64::from(day.0) * 86_400;
    if let Some(clock) = clock {
        let parts: Vec<u64> = clock
            .split(':')
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match parts[..] {
            [h, m, s] if h < 24 && m < 60 && s < 60 => seconds += h * 3600 + m * 60 + s,
            _ => return Err(bad()),
        }
    }
    Ok(UnixTime(seconds))
}

fn read_order(path: &Path) -> Result<SignedSunsetOrder, CliError> {
    let bytes = std::fs::read(path).map_err(|source| CliError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    SignedSunsetOrder::from_bytes(&bytes).map_err(|e| CliError::Argument {
        name: "order",
        reason: format!("{} is not a sunset order: {e}", path.display()),
    })
}

fn read_key(path: &Path) -> Result<Ed25519SigningKey, CliError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|source| CliError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?,
    );
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), seed.as_mut()).map_err(|_| CliError::Argument {
        name: "--key",
        reason: format!(
            "{} is not a sunset key file (64 hex digits)",
            path.display()
        ),
    })?;
    Ok(Ed25519SigningKey::from_seed(&seed))
}

/// Writes a new file, refusing to replace one; `secret`: readable by the owner only.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let failed = |source| CliError::Io {
        what: format!("writing {}", path.display()),
        source,
    };
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// Replaces a file's contents through a temporary file and a rename.
fn replace(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let tmp = path.with_extension("signing");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, bytes, false)?;
    std::fs::rename(&tmp, path).map_err(|source| CliError::Io {
        what: format!("replacing {}", path.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_times_parse_in_three_forms_and_refuse_the_rest() {
        assert_eq!(parse_time("1800000000").unwrap(), UnixTime(1_800_000_000));
        assert_eq!(parse_time("2027-03-01").unwrap(), UnixTime(1_803_859_200));
        assert_eq!(
            parse_time("2027-03-01T12:30:05Z").unwrap(),
            UnixTime(1_803_859_200 + 12 * 3600 + 30 * 60 + 5)
        );
        for bad in [
            "2027-02-30",
            "2027-03-01T24:00:00Z",
            "2027-03-01T12:00",
            "soon",
            "",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            parse_scope("federation"),
            Ok(SunsetScope::Federation)
        ));
        assert!(parse_scope(&format!("authority:{}", "ab".repeat(32))).is_ok());
        assert!(parse_scope("authority:zz").is_err());
    }

    /// The committee's whole flow: three keys, a draft, two members sign their own copies,
    /// the copies combine, and the result verifies; one copy alone does not.
    #[test]
    fn keygen_draft_sign_combine_verify() {
        let dir = tempfile::tempdir().unwrap();
        let now = UnixTime(1_800_000_000);
        let run = |command: SunsetCommand| {
            let mut out = Vec::new();
            sunset(&command, now, &mut out).map(|()| String::from_utf8(out).unwrap())
        };
        let path = |name: &str| dir.path().join(name);
        let keys: Vec<Ed25519PublicKey> = ["a", "b", "c"]
            .iter()
            .map(|name| {
                let printed = run(SunsetCommand::Keygen(KeygenArgs { out: path(name) })).unwrap();
                Ed25519PublicKey::from_hex(printed.trim()).unwrap()
            })
            .collect();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(path("a")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let committee = || CommitteeArgs {
            keys: keys.clone(),
            threshold: 2,
            federation: "north".into(),
        };
        let shown = run(SunsetCommand::Draft(DraftArgs {
            committee: committee(),
            scope: "federation".into(),
            effective: "2027-03-01".into(),
            reason: "The epidemic is declared over.".into(),
            out: path("order"),
        }))
        .unwrap();
        assert!(
            shown.contains("takes effect: 2027-03-01T00:00:00Z"),
            "{shown}"
        );
        for (member, copy) in [("a", "copy-a"), ("c", "copy-c")] {
            std::fs::copy(path("order"), path(copy)).unwrap();
            let signed = run(SunsetCommand::Sign(SignArgs {
                key: path(member),
                order: path(copy),
            }))
            .unwrap();
            assert!(signed.contains("1 approval(s)"), "{signed}");
        }
        let verify = |order: &str| {
            run(SunsetCommand::Verify(VerifyArgs {
                committee: committee(),
                order: path(order),
            }))
        };
        let partial = verify("copy-a").unwrap_err().to_string();
        assert!(
            partial.contains("1 valid approvals, the committee needs 2"),
            "{partial}"
        );
        run(SunsetCommand::Combine(CombineArgs {
            copies: vec![path("copy-a"), path("copy-c")],
            out: path("final"),
        }))
        .unwrap();
        let verdict = verify("final").unwrap();
        assert!(
            verdict.contains("valid: 2 of the committee's 3 keys"),
            "{verdict}"
        );

        // Another federation's check refuses it; a draft cannot be post-dated or overwrite.
        let elsewhere = run(SunsetCommand::Verify(VerifyArgs {
            committee: CommitteeArgs {
                federation: "south".into(),
                ..committee()
            },
            order: path("final"),
        }))
        .unwrap_err();
        assert!(elsewhere.to_string().contains("federation"), "{elsewhere}");
        let again = run(SunsetCommand::Draft(DraftArgs {
            committee: committee(),
            scope: "federation".into(),
            effective: "2020-01-01".into(),
            reason: "x".into(),
            out: path("old"),
        }))
        .unwrap_err();
        assert!(
            again.to_string().contains("before it was issued"),
            "{again}"
        );
    }
}
