//! `serve`, `init` and `config defaults`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{CliError, InitArgs};
use crate::clock::{Clock as _, SystemClock};
use crate::config::{
    ConfigFlags, ConfigWarning, DEFAULT_CONFIG_FILE, NodeConfig, RawConfig, StoreRole,
    documented_defaults, documented_file, settings_of,
};
use crate::control::{self, CONTROL_SOCKET};
use crate::node::Node;
use crate::server::{Background, serve as serve_node, shutdown_signal};
use crate::sunset_erasure;

/// `serve` arguments: each flag overrides the config file and the environment.
#[derive(Default, Args)]
pub struct ServeArgs {
    /// Config file (default: ./ephemera.toml when it exists). Also `EPHEMERA_CONFIG`.
    #[arg(long, env = "EPHEMERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// The named flags of config keys (`--data-dir`, `--listen`, ...), from the key table.
    #[command(flatten)]
    pub flags: ConfigFlags,
    /// Any config key, as `section.key=value` (repeatable), e.g. `retention.days=7`.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub set: Vec<String>,
    /// Take the wall clock as right even though it is far past the last batch cut (after a
    /// long outage, or a clock corrected forward): check the time first.
    #[arg(long)]
    pub accept_clock: bool,
}

/// Shows which flags are given, never their values (`--set http.metrics_token=...`).
impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set: Vec<&str> = self
            .set
            .iter()
            .map(|item| item.split('=').next().unwrap_or_default())
            .collect();
        f.debug_struct("ServeArgs")
            .field("config", &self.config)
            .field("flags", &self.flags)
            .field("set", &set)
            .field("accept_clock", &self.accept_clock)
            .finish()
    }
}

/// Reads the config file, the environment (`vars`) and the flags, in that order of
/// precedence (flags win), into a checked [`NodeConfig`], with the warnings the sources
/// gave (old key names, unknown `EPHEMERA_*` variables).
///
/// # Errors
/// [`CliError::Config`] naming the bad key and where it came from.
pub fn load_config(
    args: &ServeArgs,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(NodeConfig, Vec<ConfigWarning>), CliError> {
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
    let flags = RawConfig::from_flags(&args.set, &args.flags)?;
    let raw = file.merge(env).merge(flags);
    let warnings = raw.warnings().to_vec();
    Ok((NodeConfig::try_from(raw)?, warnings))
}

fn print_case_worker(out: &mut impl Write, name: &str, password: &str) -> Result<(), CliError> {
    let io = |source| CliError::Io {
        what: "writing to stdout".to_owned(),
        source,
    };
    writeln!(
        out,
        "Created the first account, an admin with every role (shown once, stored only as a \
         salted hash; its first sign-in must set a new password):"
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
    let (config, warnings) = load_config(&args, std::env::vars())?;
    crate::logging::init(config.log.format, &config.log.filter);
    crate::server::prepare_process();
    for warning in &warnings {
        tracing::warn!("config: {warning}");
    }
    let listen = config.http.listen;
    // A node that an order stopped erases its data, then serves only the order and its
    // receipt (`sunset_erasure`); a kill between the steps erases again here.
    loop {
        if let Some(erased) = sunset_erasure::finished(&config.data_dir)? {
            return serve_sunset(&config, listen, erased).await;
        }
        if sunset_erasure::begun(&config.data_dir) {
            sunset_erasure::erase(&config, SystemClock.now())?;
            continue;
        }
        let opened = Node::open(config.clone(), Arc::new(SystemClock))?;
        if opened.node.sunset_due() {
            drop(opened);
            sunset_erasure::erase(&config, SystemClock.now())?;
            continue;
        }
        let node = opened.node.clone();
        serve_opened(&args, opened, listen).await?;
        if !node.sunset_due() {
            return Ok(());
        }
        drop(node);
        sunset_erasure::erase(&config, SystemClock.now())?;
    }
}

/// Serves an erased node: its order, its receipt, health, and 410 `sunset` for anything
/// else, until SIGINT or SIGTERM; a federating node goes on passing the order to its peers
/// (`SunsetBeacon`).
async fn serve_sunset(
    config: &NodeConfig,
    listen: std::net::SocketAddr,
    erased: sunset_erasure::Erased,
) -> Result<(), CliError> {
    let listener = bind(listen).await?;
    let beacon = (config.storage.role == StoreRole::All && config.federation.enabled)
        .then(|| crate::node::SunsetBeacon::start(config, &erased.order))
        .transpose()?;
    let local = local_addr(&listener)?;
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "ephemera-node sunset: listening on http://{local}");
    let _ = writeln!(stdout, "  order:            {}", erased.order.order.id());
    let _ = stdout.flush();
    tracing::warn!(order = %erased.order.order.id(), "the node's data was erased under a sunset order: serving the order and the receipt only");
    let served = axum::serve(listener, crate::api::sunset_router(erased))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|source| CliError::Io {
            what: "serving HTTP".to_owned(),
            source,
        });
    if let Some(beacon) = beacon {
        beacon.stop().await;
    }
    served
}

async fn bind(listen: std::net::SocketAddr) -> Result<tokio::net::TcpListener, CliError> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| CliError::Io {
            what: format!("cannot listen on {listen}"),
            source,
        })
}

fn local_addr(listener: &tokio::net::TcpListener) -> Result<std::net::SocketAddr, CliError> {
    listener.local_addr().map_err(|source| CliError::Io {
        what: "reading the listen address".to_owned(),
        source,
    })
}

/// Serves an opened node until SIGINT, SIGTERM, or its sunset order's time.
async fn serve_opened(
    args: &ServeArgs,
    opened: crate::node::Opened,
    listen: std::net::SocketAddr,
) -> Result<(), CliError> {
    if args.accept_clock {
        tracing::warn!("the wall clock is taken as right at start (--accept-clock)");
        opened.node.accept_clock();
    }
    let socket = opened.node.config().data_dir.join(CONTROL_SOCKET);
    let control = control::listen(opened.node.clone(), &socket).map_err(|source| CliError::Io {
        what: format!("cannot listen on {}", socket.display()),
        source,
    })?;
    let mut stdout = std::io::stdout();
    if let Some((name, password)) = &opened.new_case_worker {
        print_case_worker(&mut stdout, name, password.reveal())?;
    }
    let listener = bind(listen).await?;
    let local = local_addr(&listener)?;
    let info = opened.node.authority_info();
    let role = opened.node.config().storage.role;
    let _ = writeln!(stdout, "ephemera-node listening on http://{local}");
    if role != StoreRole::All {
        // A node of a group that does one part of its work: say which, first.
        let _ = writeln!(
            stdout,
            "  storage role:     {role} (node/docs/OPERATIONS.md, \"Least-privilege roles\")"
        );
    }
    let _ = writeln!(
        stdout,
        "  data folder:      {}",
        opened.node.config().data_dir.display()
    );
    let _ = writeln!(stdout, "  authority key:    {}", info.authority_public_key);
    let _ = writeln!(stdout, "  batch key:        {}", info.batch_public_key);
    if role.runs_console() {
        let _ = writeln!(stdout, "  console:          http://{local}/console");
    }
    let next = &opened.node.keys().next;
    for (key, under_way) in [
        ("batch", next.batch.is_some()),
        ("authority", next.authority.is_some()),
        ("export", next.export.is_some()),
    ] {
        if under_way {
            let _ = writeln!(
                stdout,
                "  key rotation:     {key} key in its overlap (`ephemera-node keys status`)"
            );
            tracing::info!(key, "key rotation in its overlap");
        }
    }
    if role != StoreRole::All {
        let _ = writeln!(
            stdout,
            "  federation:       off (only a node with [storage] role = \"all\" federates)"
        );
    } else if opened.node.config().federation.enabled {
        // Described and at zero in /metrics before the first peer shows up.
        ::metrics::with_local_recorder(
            opened.node.metrics().recorder(),
            crate::federation::metrics::register,
        );
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
        let _ = writeln!(
            stdout,
            "  federation:       off (config key [federation] enabled)"
        );
    }
    let _ = stdout.flush();
    tracing::info!(data_dir = %opened.node.config().data_dir.display(), role = role.name(), "node started");
    let node = opened.node.clone();
    let shutdown = async move {
        tokio::select! {
            () = shutdown_signal() => {}
            () = node.sunset_reached() => {
                tracing::warn!("the sunset order takes effect: stopping to erase the node's data");
            }
        }
    };
    let served = serve_node(opened.node, listener, Background::Run, shutdown).await;
    control.abort();
    let _ = std::fs::remove_file(&socket);
    served.map_err(|source| CliError::Io {
        what: "serving HTTP".to_owned(),
        source,
    })
}

/// `ephemera-node config defaults`: prints the documented default file (every key with its
/// doc, variable, flag and range, commented out at its default).
///
/// # Errors
/// [`CliError::Io`] when `out` cannot be written.
pub fn config_defaults(out: &mut impl Write) -> Result<(), CliError> {
    out.write_all(documented_defaults().as_bytes())
        .map_err(|source| CliError::Io {
            what: "writing to stdout".to_owned(),
            source,
        })
}

/// `ephemera-node init`: writes the commented config file, creates the data folder and
/// keys, and prints the first case worker's credentials once.
///
/// # Errors
/// [`CliError`] when the config file exists (without `--force`), does not load (with
/// `--force`: its settings are kept, so it must be valid), or files cannot be written.
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
    // `--force` rewrites the file in the current layout and keeps every setting it had.
    let mut settings = if args.config.exists() {
        let text = std::fs::read_to_string(&args.config).map_err(|source| CliError::Io {
            what: format!("reading {}", args.config.display()),
            source,
        })?;
        settings_of(&text, &args.config.display().to_string())?
    } else {
        BTreeMap::new()
    };
    if let Some(dir) = &args.data_dir {
        settings.insert("data_dir", toml::Value::String(dir.display().to_string()));
    }
    let data_dir = match settings.get("data_dir") {
        Some(toml::Value::String(dir)) => PathBuf::from(dir),
        _ => NodeConfig::default().data_dir,
    };
    let template = documented_file(&settings);
    std::fs::write(&args.config, template).map_err(|source| CliError::Io {
        what: format!("writing {}", args.config.display()),
        source,
    })?;
    let config = NodeConfig {
        data_dir,
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
        writeln!(out, "Staff accounts already exist; none created.").map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_args(argv: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(["ephemera-node", "serve"].iter().chain(argv)).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        args
    }

    #[test]
    fn flags_beat_environment_beat_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(
            &file,
            "[retention]\ndays = 10\n[publication]\nbatch_period_seconds = 100\n\
             [log]\nfilter = \"warn\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let args = serve_args(&[
            "--config",
            file.to_str().unwrap(),
            "--retention-days",
            "3",
            "--set",
            "publication.batch_min_entries=5",
            "--set",
            "http.listen=127.0.0.1:2",
            "--listen",
            "127.0.0.1:3",
            "--data-dir",
            "/srv/ephemera",
            "--batch-period-seconds",
            "300",
        ]);
        let env = [
            ("EPHEMERA_RETENTION_DAYS".to_owned(), "7".to_owned()),
            (
                "EPHEMERA_PUBLICATION_BATCH_PERIOD_SECONDS".to_owned(),
                "200".to_owned(),
            ),
            (
                "EPHEMERA_AUTHORITY_MAX_CODES_PER_REQUEST".to_owned(),
                "9".to_owned(),
            ),
        ];
        let (config, warnings) = load_config(&args, env).unwrap();
        assert_eq!(warnings, []);
        assert_eq!(config.retention.days, 3, "flag");
        assert_eq!(config.publication.batch_period_seconds, 300, "flag");
        assert_eq!(config.data_dir, PathBuf::from("/srv/ephemera"), "flag");
        assert_eq!(config.log.filter, "warn", "file");
        assert_eq!(config.authority.max_codes_per_request, 9, "environment");
        assert_eq!(config.publication.batch_min_entries, 5, "--set");
        assert_eq!(config.http.listen.port(), 3, "a named flag beats --set");
        let bad = ServeArgs {
            set: vec!["nonsense".into()],
            ..Default::default()
        };
        assert!(load_config(&bad, []).is_err());
    }

    #[test]
    fn serve_args_debug_never_shows_values() {
        let secret = "s3cret-Token_0123456789";
        let args = serve_args(&[
            "--set",
            &format!("http.metrics_token={secret}"),
            "--data-dir",
            "/srv/x",
        ]);
        let shown = format!("{args:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("http.metrics_token"), "{shown}");
    }

    #[test]
    fn config_defaults_prints_the_documented_file() {
        let mut out = Vec::new();
        config_defaults(&mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), documented_defaults());
        assert!(matches!(
            Cli::try_parse_from(["ephemera-node", "config", "defaults"])
                .unwrap()
                .command,
            Command::Config(crate::cli::ConfigCommand::Defaults)
        ));
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
        assert_eq!(raw.warnings(), []);
        let config = NodeConfig::try_from(raw).unwrap();
        assert_eq!(Some(config.data_dir.clone()), args.data_dir);
        assert_eq!(
            config,
            NodeConfig {
                data_dir: config.data_dir.clone(),
                ..NodeConfig::default()
            }
        );
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

    #[test]
    fn init_force_rewrites_the_file_and_keeps_every_setting() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("ephemera.toml");
        let data = dir.path().join("data");
        // An operator's file: one key under its flat name from before sections.
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nretention_days = 7\n[publication]\nbatch_period_seconds = 600\n\
                 accept_schemes = [\"gaen\"]\n",
                data.display().to_string()
            ),
        )
        .unwrap();
        let before = NodeConfig::try_from(
            RawConfig::from_toml(&std::fs::read_to_string(&config).unwrap(), "f").unwrap(),
        )
        .unwrap();
        let args = InitArgs {
            config: config.clone(),
            data_dir: None,
            force: true,
        };
        init(&args, &mut Vec::new()).unwrap();
        let written = std::fs::read_to_string(&config).unwrap();
        let raw = RawConfig::from_toml(&written, "written").unwrap();
        assert_eq!(raw.warnings(), [], "rewritten in the current layout");
        assert_eq!(NodeConfig::try_from(raw).unwrap(), before, "{written}");
        assert!(written.contains("[retention]\n") && written.contains("\ndays = 7\n"));
        // A file that does not load is not overwritten.
        std::fs::write(&config, "[publication]\nbatch_perod_seconds = 1\n").unwrap();
        assert!(init(&args, &mut Vec::new()).is_err());
        assert!(
            std::fs::read_to_string(&config)
                .unwrap()
                .contains("batch_perod_seconds")
        );
    }
}
