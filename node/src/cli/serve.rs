//! `serve` and `init`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{CliError, InitArgs};
use crate::clock::SystemClock;
use crate::config::{DEFAULT_CONFIG_FILE, LogFormat, NodeConfig, RawConfig, config_template};
use crate::node::Node;
use crate::server::{Background, serve as serve_node, shutdown_signal};

/// `serve` arguments: each flag overrides the config file and the environment.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Config file (default: ./ephemera.toml when it exists). Also `EPHEMERA_CONFIG`.
    #[arg(long, env = "EPHEMERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder (config key `data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address (config key `listen`).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Seconds between batches (config key `batch_period_seconds`).
    #[arg(long)]
    pub batch_period_seconds: Option<u64>,
    /// Days of retention (config key `retention_days`).
    #[arg(long)]
    pub retention_days: Option<u32>,
    /// Any config key, as `key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Reads the config file, the environment (`vars`) and the flags, in that order of
/// precedence (flags win), into a checked [`NodeConfig`].
///
/// # Errors
/// [`CliError::Config`] naming the bad key and where it came from.
pub fn load_config(
    args: &ServeArgs,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<NodeConfig, CliError> {
    let file = match &args.config {
        Some(path) => RawConfig::from_file(path)?,
        None => {
            let default = PathBuf::from(DEFAULT_CONFIG_FILE);
            if default.exists() {
                RawConfig::from_file(&default)?
            } else {
                RawConfig::default()
            }
        }
    };
    let env = RawConfig::from_env(vars)?;
    let mut pairs = Vec::with_capacity(args.set.len());
    for item in &args.set {
        let (key, value) = item.split_once('=').ok_or(CliError::Argument {
            name: "--set",
            reason: format!("`{item}` is not KEY=VALUE"),
        })?;
        pairs.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    let mut flags = RawConfig::from_pairs(pairs, "--set flags")?;
    flags.data_dir = args.data_dir.clone().or(flags.data_dir);
    flags.listen = args.listen.or(flags.listen);
    flags.batch_period_seconds = args.batch_period_seconds.or(flags.batch_period_seconds);
    flags.retention_days = args.retention_days.or(flags.retention_days);
    Ok(NodeConfig::try_from(file.merge(env).merge(flags))?)
}

/// Crates under libp2p whose debug output names IP addresses.
const LIBP2P_CRATES: &[&str] = &[
    "libp2p",
    "libp2p_swarm",
    "libp2p_tcp",
    "libp2p_quic",
    "libp2p_mdns",
    "libp2p_kad",
    "libp2p_gossipsub",
    "libp2p_identify",
    "libp2p_noise",
    "libp2p_request_response",
    "libp2p_core",
    "multistream_select",
    "yamux",
    "quinn",
    "quinn_proto",
];

/// Sets up structured logs on stderr. Safe to call twice (the second call does nothing).
pub fn init_logging(format: LogFormat, filter: &str) {
    // libp2p's own crates put peer addresses in their debug and trace spans: keep them at
    // `warn` unless the filter names them itself.
    let mut filter = filter.to_owned();
    for noisy in LIBP2P_CRATES {
        if !filter.contains(noisy) {
            filter.push_str(&format!(",{noisy}=warn"));
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn print_case_worker(out: &mut impl Write, name: &str, password: &str) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    };
    writeln!(
        out,
        "Created case-worker credentials (shown once, stored only as a salted hash):"
    )
    .map_err(io)?;
    writeln!(out, "  name:     {name}").map_err(io)?;
    writeln!(out, "  password: {password}").map_err(io)?;
    Ok(())
}

/// `ephemera-node serve`: opens the data folder, prints where it listens and serves
/// until SIGINT or SIGTERM.
///
/// # Errors
/// [`CliError`] for bad configuration, an unusable data folder or a port in use.
pub async fn serve(args: ServeArgs) -> Result<(), CliError> {
    let config = load_config(&args, std::env::vars())?;
    init_logging(config.log_format, &config.log_filter);
    let listen = config.listen;
    let opened = Node::open(config, Arc::new(SystemClock))?;
    let mut stdout = std::io::stdout();
    if let Some((name, password)) = &opened.new_case_worker {
        print_case_worker(&mut stdout, name, password.reveal())?;
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| CliError::Io {
            what: format!("cannot listen on {listen}"),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| CliError::Io {
        what: "reading the listen address".to_owned(),
        source,
    })?;
    let info = opened.node.authority_info();
    let _ = writeln!(stdout, "ephemera-node listening on http://{local}");
    let _ = writeln!(
        stdout,
        "  data folder:      {}",
        opened.node.config().data_dir.display()
    );
    let _ = writeln!(stdout, "  authority key:    {}", info.authority_public_key);
    let _ = writeln!(stdout, "  batch key:        {}", info.batch_public_key);
    let _ = writeln!(stdout, "  case-worker page: http://{local}/case-worker");
    if opened.node.config().federation {
        let handle = opened
            .node
            .start_federation(opened.node.federation_config())?;
        let peer_id = handle.peer_id();
        let _ = writeln!(stdout, "  libp2p peer id:   {peer_id}");
        let addrs = handle.listen_addrs().await.unwrap_or_default();
        for addr in addrs {
            let _ = writeln!(stdout, "  libp2p listening: {addr}/p2p/{peer_id}");
        }
    } else {
        let _ = writeln!(stdout, "  federation:       off (config key `federation`)");
    }
    let _ = stdout.flush();
    tracing::info!(data_dir = %opened.node.config().data_dir.display(), "node started");
    serve_node(opened.node, listener, Background::Run, shutdown_signal())
        .await
        .map_err(|source| CliError::Io {
            what: "serving HTTP".to_owned(),
            source,
        })
}

/// `ephemera-node init`: writes the commented config file, creates the data folder and
/// keys, and prints the first case worker's credentials once.
///
/// # Errors
/// [`CliError`] when the config file exists (without `--force`) or files cannot be written.
pub fn init(args: &InitArgs, out: &mut impl Write) -> Result<(), CliError> {
    if args.config.exists() && !args.force {
        return Err(CliError::Argument {
            name: "--config",
            reason: format!(
                "{} exists; pass --force to overwrite",
                args.config.display()
            ),
        });
    }
    let mut template = config_template();
    if let Some(dir) = &args.data_dir {
        template.push_str(&format!("\ndata_dir = {:?}\n", dir.display().to_string()));
    }
    std::fs::write(&args.config, template).map_err(|source| CliError::Io {
        what: format!("writing {}", args.config.display()),
        source,
    })?;
    let config = NodeConfig {
        data_dir: args
            .data_dir
            .clone()
            .unwrap_or_else(|| NodeConfig::default().data_dir),
        ..NodeConfig::default()
    };
    let opened = Node::open(config, Arc::new(SystemClock))?;
    let io = |source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    };
    writeln!(out, "Wrote {}", args.config.display()).map_err(io)?;
    writeln!(
        out,
        "Data folder: {}",
        opened.node.config().data_dir.display()
    )
    .map_err(io)?;
    if let Some((name, password)) = &opened.new_case_worker {
        print_case_worker(out, name, password.reveal())?;
    } else {
        writeln!(out, "Case-worker credentials already exist; none created.").map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_environment_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "retention_days = 10\nbatch_period_seconds = 100\nlog_filter = \"warn\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            retention_days: Some(3),
            set: vec!["batch_min_entries=5".into()],
            ..Default::default()
        };
        let env = [
            ("EPHEMERA_RETENTION_DAYS".to_owned(), "7".to_owned()),
            ("EPHEMERA_BATCH_PERIOD_SECONDS".to_owned(), "200".to_owned()),
        ];
        let config = load_config(&args, env).unwrap();
        assert_eq!(config.retention_days, 3, "flag");
        assert_eq!(config.batch_period_seconds, 200, "environment");
        assert_eq!(config.log_filter, "warn", "file");
        assert_eq!(config.batch_min_entries, 5, "--set");
        let bad = ServeArgs {
            set: vec!["nonsense".into()],
            ..Default::default()
        };
        assert!(load_config(&bad, []).is_err());
    }

    #[test]
    fn init_writes_a_config_and_prints_credentials_once() {
        let dir = tempfile::tempdir().unwrap();
        let args = InitArgs {
            config: dir.path().join("ephemera.toml"),
            data_dir: Some(dir.path().join("data")),
            force: false,
        };
        let mut out = Vec::new();
        init(&args, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("password: "), "{text}");
        let written = std::fs::read_to_string(&args.config).unwrap();
        let raw = RawConfig::from_toml(&written, "written").unwrap();
        assert_eq!(raw.data_dir, args.data_dir);
        assert!(init(&args, &mut Vec::new()).is_err(), "no silent overwrite");
        let mut again = Vec::new();
        init(
            &InitArgs {
                force: true,
                ..args
            },
            &mut again,
        )
        .unwrap();
        assert!(!String::from_utf8(again).unwrap().contains("password: "));
    }
}
