//! Tests of the key table, its three sources and the documented default file.

use super::*;

/// What `ephemera-node init` wrote before sections (its template, with `--data-dir`).
const FLAT_INIT_FILE: &str = include_str!("../../tests/fixtures/flat-init-0.1.toml");

const SECRET: &str = "s3cret-Token_0123456789";

/// A federation's publication key (hex).
const PUBLICATION_KEY: &str = "5a0f5a0f5a0f5a0f5a0f5a0f5a0f5a0f5a0f5a0f5a0f5a0f5a0f5a0f5a0f5a0f";

fn peer() -> String {
    let id = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    format!("/ip4/10.0.0.2/tcp/4001/p2p/{id}")
}

/// A value other than the default for every key: `(path, TOML, text for env and flags)`.
fn samples() -> Vec<(&'static str, String, String)> {
    let peer = peer();
    let authority = "ab".repeat(32);
    let rollover = hex::encode(
        ephemera_proto::rollover::KeyRollover::announce(
            ephemera_proto::rollover::KeyRole::Authority,
            &ephemera_proto::signing::Ed25519SigningKey::from_seed(&[1; 32]),
            &ephemera_proto::signing::Ed25519SigningKey::from_seed(&[2; 32]),
            ephemera_proto::UnixTime(1_700_000_000),
        )
        .to_bytes(),
    );
    let s = |path, toml: &str, text: &str| (path, toml.to_owned(), text.to_owned());
    vec![
        s("data_dir", "\"/srv/ephemera\"", "/srv/ephemera"),
        s("http.listen", "\"0.0.0.0:9000\"", "0.0.0.0:9000"),
        s("http.max_upload_bytes", "8192", "8192"),
        s("http.metrics_token", &format!("\"{SECRET}\""), SECRET),
        s("federation.enabled", "false", "false"),
        s("federation.listen", "\"127.0.0.1:4002\"", "127.0.0.1:4002"),
        s(
            "federation.bootstrap_peers",
            &format!("[\"{peer}\"]"),
            &peer,
        ),
        s("federation.mdns", "true", "true"),
        s("federation.region", "\"eu-west\"", "eu-west"),
        s("federation.publish_delay_ms", "0", "0"),
        s("federation.sync_interval_seconds", "5", "5"),
        s("federation.reserved_peers", &format!("[\"{peer}\"]"), &peer),
        s("federation.max_connections", "64", "64"),
        s("federation.max_connections_per_ip", "2", "2"),
        s("federation.max_connections_per_subnet", "4", "4"),
        s("federation.max_pending_connections", "16", "16"),
        s("federation.stranger_idle_seconds", "30", "30"),
        s("federation.response_bytes_total", "8388608", "8388608"),
        s("federation.response_bytes_per_peer", "2097152", "2097152"),
        s("federation.discovery", "false", "false"),
        s("federation.dial_private_addresses", "true", "true"),
        s("federation.dials_per_minute", "5", "5"),
        s(
            "federation.relay_authorities",
            &format!("[\"{authority}\"]"),
            &authority,
        ),
        s("publication.batch_period_seconds", "600", "600"),
        s("publication.batch_min_entries", "10", "10"),
        s("publication.batch_max_entries", "5000", "5000"),
        s("publication.release_spread_seconds", "43200", "43200"),
        s(
            "publication.publication_key",
            &format!("\"{PUBLICATION_KEY}\""),
            PUBLICATION_KEY,
        ),
        s("publication.accept_schemes", "[\"gaen\"]", "gaen"),
        s("publication.export_region", "\"DE\"", "DE"),
        s(
            "publication.object_store",
            "\"s3://ephemera-public/de\"",
            "s3://ephemera-public/de",
        ),
        s(
            "publication.object_store_endpoint",
            "\"http://127.0.0.1:9000\"",
            "http://127.0.0.1:9000",
        ),
        s(
            "publication.object_store_region",
            "\"eu-central-1\"",
            "eu-central-1",
        ),
        s("publication.object_store_allow_http", "true", "true"),
        // Text that looks like a number stays a string where the key is one.
        s("publication.export_key_id", "\"310\"", "310"),
        s("publication.export_key_version", "\"v2\"", "v2"),
        s("publication.clock_step_tolerance_seconds", "600", "600"),
        s("publication.clock_max_start_gap_seconds", "7200", "7200"),
        s("retention.days", "7", "7"),
        s("retention.purge_period_seconds", "60", "60"),
        s("retention.audit_days", "90", "90"),
        s("storage.backend", "\"postgres\"", "postgres"),
        s(
            "storage.url",
            "\"postgres://node@db.internal/ephemera\"",
            "postgres://node@db.internal/ephemera",
        ),
        s("storage.schema", "\"group_a\"", "group_a"),
        s("storage.pool_size", "8", "8"),
        s("storage.role", "\"publisher\"", "publisher"),
        s("storage.free_space_reserve_mb", "1024", "1024"),
        s("authority.code_lifetime_seconds", "600", "600"),
        s("authority.certificate_lifetime_seconds", "120", "120"),
        s("authority.session_lifetime_seconds", "3600", "3600"),
        s("authority.session_idle_seconds", "600", "600"),
        s("authority.require_totp", "true", "true"),
        s("authority.blind_token_keys", "false", "false"),
        s("authority.verify_failures_per_minute", "10", "10"),
        s("authority.api_key_daily_codes", "50", "50"),
        s("authority.account_daily_codes", "40", "40"),
        s("authority.stats_days", "30", "30"),
        s("authority.stats_min_count", "1", "1"),
        s("http.header_read_timeout_ms", "2000", "2000"),
        s("http.body_read_timeout_ms", "3000", "3000"),
        s("http.request_deadline_ms", "4000", "4000"),
        s("http.phone_answer_floor_ms", "20", "20"),
        s("http.max_connections", "100", "100"),
        s("http.phone_in_flight", "10", "10"),
        s("http.console_in_flight", "11", "11"),
        s("http.per_source_in_flight", "3", "3"),
        s("http.serving_in_flight", "12", "12"),
        s("http.in_flight_body_bytes", "1048576", "1048576"),
        s(
            "http.source_header",
            "\"X-Forwarded-For\"",
            "X-Forwarded-For",
        ),
        s("authority.login_failures_per_user", "3", "3"),
        s("authority.max_codes_per_request", "50", "50"),
        s(
            "authority.trusted_authorities",
            &format!("[\"{authority}\"]"),
            &authority,
        ),
        s(
            "authority.trusted_authority_rollovers",
            &format!("[\"{rollover}\"]"),
            &rollover,
        ),
        s(
            "sunset.keys",
            &format!("[\"{}\", \"{}\"]", "cd".repeat(32), "ef".repeat(32)),
            &format!("{},{}", "cd".repeat(32), "ef".repeat(32)),
        ),
        s("sunset.threshold", "1", "1"),
        s("log.format", "\"json\"", "json"),
        s("log.filter", "\"debug\"", "debug"),
    ]
}

fn file_line(key: &Key, toml: &str) -> String {
    if key.section.is_empty() {
        format!("{} = {toml}\n", key.name)
    } else {
        format!("[{}]\n{} = {toml}\n", key.section, key.name)
    }
}

fn load(raw: RawConfig) -> NodeConfig {
    NodeConfig::try_from(raw).unwrap()
}

#[test]
fn defaults_are_loopback_and_fourteen_days_and_the_cores_policy() {
    let config = load(RawConfig::default());
    assert_eq!(config, NodeConfig::default());
    assert!(config.http.listen.ip().is_loopback());
    assert!(config.federation.listen.ip().is_loopback());
    // A fixed federation port, so that peers' bootstrap addresses survive a restart.
    assert_eq!(config.federation.listen.port(), 4001);
    assert_eq!(config.retention.days, 14);
    assert_eq!(config.data_dir, PathBuf::from("./ephemera-data"));
    assert_eq!(config.http.metrics_token, None);
    assert_eq!(config.policy(), Policy::default());
}

#[test]
fn every_key_round_trips_through_file_env_and_flags() {
    let samples = samples();
    for key in KEYS {
        assert!(
            samples.iter().any(|(path, ..)| *path == key.path),
            "{key}: add a sample"
        );
    }
    for (path, toml, text) in &samples {
        let key = Key::find(path).unwrap_or_else(|| panic!("{path} is no key"));
        let file = RawConfig::from_toml(&file_line(key, toml), "f").unwrap();
        assert_eq!(file.warnings(), [], "{key}");
        let from_file = load(file);
        assert_ne!(from_file, NodeConfig::default(), "{key}: not read");

        let env = RawConfig::from_env([(key.env(), text.clone())]).unwrap();
        assert_eq!(env.warnings(), [], "{key}");
        assert_eq!(load(env), from_file, "{key} from {}", key.env());

        let set = RawConfig::from_flags(&[format!("{path}={text}")], &ConfigFlags::default());
        assert_eq!(load(set.unwrap()), from_file, "{key} from --set");

        if key.flag.is_some() {
            let flags = ConfigFlags::from_pairs([(*path, text.as_str())]);
            let raw = RawConfig::from_flags(&[], &flags).unwrap();
            assert_eq!(load(raw), from_file, "{key} from --{:?}", key.flag);
        }

        // The flat name from before sections, in a file and in the environment (keys added
        // since have none).
        let Some(old) = key.was else {
            assert!(key.old_env().is_none(), "{key}");
            continue;
        };
        let flat = RawConfig::from_toml(&format!("{old} = {toml}\n"), "f").unwrap();
        assert_eq!(load(flat.clone()), from_file, "{key} as {old}");
        if key.section.is_empty() {
            assert_eq!(flat.warnings(), []);
        } else {
            assert_eq!(
                flat.warnings(),
                [ConfigWarning::Renamed {
                    origin: Origin::File {
                        path: "f".into(),
                        line: 1
                    },
                    old: old.to_owned(),
                    key,
                }]
            );
        }
        if let Some(old_env) = key.old_env() {
            let env = RawConfig::from_env([(old_env.clone(), text.clone())]).unwrap();
            assert_eq!(env.warnings().len(), 1, "{old_env}");
            let warning = env.warnings()[0].to_string();
            assert!(warning.contains(&key.env()), "{warning}");
            assert!(!warning.contains(SECRET), "{warning}");
            assert_eq!(load(env), from_file, "{key} from {old_env}");
        }
    }
}

#[test]
fn file_env_flags_merge_in_order() {
    let file = RawConfig::from_toml(
        "[retention]\ndays = 10\n[publication]\nbatch_period_seconds = 60\n\
         [http]\nlisten = \"127.0.0.1:9000\"\n",
        "f",
    )
    .unwrap();
    let env = RawConfig::from_env([
        ("EPHEMERA_RETENTION_DAYS".to_owned(), "7".to_owned()),
        (
            "EPHEMERA_PUBLICATION_ACCEPT_SCHEMES".to_owned(),
            "pet".to_owned(),
        ),
        ("EPHEMERA_CONFIG".to_owned(), "other.toml".to_owned()),
        ("PATH".to_owned(), "/bin".to_owned()),
    ])
    .unwrap();
    assert_eq!(env.warnings(), []);
    let flags = RawConfig::from_flags(
        &["publication.batch_period_seconds=30".to_owned()],
        &ConfigFlags::from_pairs([("retention.days", "3")]),
    )
    .unwrap();
    let config = load(file.clone().merge(env.clone()).merge(flags));
    assert_eq!(config.retention.days, 3, "flag over env over file");
    assert_eq!(
        config.publication.batch_period_seconds, 30,
        "flag over file"
    );
    assert_eq!(config.http.listen, SocketAddr::from(([127, 0, 0, 1], 9000)));
    assert_eq!(config.publication.accept_schemes, vec![SchemeKind::Pet]);
    assert_eq!(load(file.merge(env)).retention.days, 7, "env over file");
}

#[test]
fn the_flat_file_init_wrote_loads_with_a_warning_naming_each_new_key() {
    // As written: every key commented out but `data_dir`, whose name did not change.
    let raw = RawConfig::from_toml(FLAT_INIT_FILE, "ephemera.toml").unwrap();
    assert_eq!(raw.warnings(), []);
    let config = load(raw);
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/ephemera"));
    assert_eq!(
        config,
        NodeConfig {
            data_dir: config.data_dir.clone(),
            ..NodeConfig::default()
        }
    );

    // With every key uncommented, as an operator who set them all (`data_dir` is set).
    let uncommented: String = FLAT_INIT_FILE
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(key) if key.contains(" = ") && !key.starts_with("data_dir") => key,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let raw = RawConfig::from_toml(&uncommented, "ephemera.toml").unwrap();
    let warnings: Vec<String> = raw.warnings().iter().map(|w| w.to_string()).collect();
    // Keys that had a flat name (keys added since sections came have none).
    let renamed: Vec<&Key> = KEYS
        .iter()
        .filter(|k| !k.section.is_empty() && k.was.is_some())
        .collect();
    assert_eq!(warnings.len(), renamed.len(), "{warnings:#?}");
    for key in renamed {
        let old = key.was.unwrap();
        let line = uncommented
            .lines()
            .position(|l| l.starts_with(&format!("{old} = ")))
            .unwrap()
            + 1;
        let expected = format!("ephemera.toml line {line}: {old} is now {key} (");
        assert!(
            warnings.iter().any(|w| w.starts_with(&expected)),
            "{expected} in {warnings:#?}"
        );
    }
    assert!(
        warnings.contains(
            &"ephemera.toml line 22: retention_days is now [retention] days \
          (`ephemera-node config defaults` prints the new layout)"
                .to_owned()
        )
    );
    let mut config = load(raw);
    // That file's federation port (0, the old default) is kept: a written setting wins.
    assert_eq!(config.federation.listen.port(), 0);
    config.federation.listen = NodeConfig::default().federation.listen;
    assert_eq!(
        config,
        NodeConfig {
            data_dir: PathBuf::from("/var/lib/ephemera"),
            ..NodeConfig::default()
        }
    );

    // Old names take effect, and clash with their new name in the same file.
    let raw = RawConfig::from_toml("retention_days = 7\nfederation = false\n", "f").unwrap();
    let config = load(raw);
    assert_eq!(config.retention.days, 7);
    assert!(!config.federation.enabled);
    let err = RawConfig::from_toml("retention_days = 7\n[retention]\ndays = 8\n", "f").unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Duplicate {
                key: "retention.days",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "f line 3: retention.days is already set at f line 1"
    );
}

#[test]
fn an_unknown_key_is_an_error_naming_it_and_its_line() {
    let text = documented_defaults().replace(
        "# batch_period_seconds = 3600",
        "batch_perod_seconds = 3600",
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("batch_perod_seconds"))
        .unwrap()
        + 1;
    let err = RawConfig::from_toml(&text, "ephemera.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("ephemera.toml line {line}: unknown key 'batch_perod_seconds' in [publication]")
    );
    let err = RawConfig::from_toml("\n\nlisen = \"x\"\n", "ephemera.toml").unwrap_err();
    assert_eq!(err.to_string(), "ephemera.toml line 3: unknown key 'lisen'");
    let err = RawConfig::from_toml("[http]\n[publicaton]\nx = 1\n", "ephemera.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "ephemera.toml line 2: unknown section [publicaton]"
    );
    let err = RawConfig::from_toml("retention.dayz = 1\n", "e.toml").unwrap_err();
    assert_eq!(
        err.to_string(),
        "e.toml line 1: unknown key 'dayz' in [retention]"
    );
    let err =
        RawConfig::from_flags(&["retention.dayz=1".into()], &ConfigFlags::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "flag --set retention.dayz: unknown key 'retention.dayz'"
    );
    assert!(matches!(
        RawConfig::from_flags(&["nonsense".into()], &ConfigFlags::default()),
        Err(ConfigError::NotKeyValue)
    ));
    // An unknown variable only warns: the environment is shared with other programs.
    let env = RawConfig::from_env([("EPHEMERA_RETENTION_DAYZ".to_owned(), "1".to_owned())]);
    assert_eq!(
        env.unwrap().warnings(),
        [ConfigWarning::UnknownEnv("EPHEMERA_RETENTION_DAYZ".into())]
    );
}

#[test]
fn malformed_values_name_their_key_and_where_they_came_from() {
    let err = RawConfig::from_toml("[retention\ndays = 1\n", "e.toml").unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("line 1"), "{err}");

    let bad = |text: &str| load_err(RawConfig::from_toml(text, "e.toml").unwrap());
    assert_eq!(
        bad("\n[retention]\ndays = \"ten\"\n").to_string(),
        "e.toml line 3: invalid value for [retention] days: expected an integer, found string"
    );
    assert_eq!(
        bad("[retention]\ndays = 0\n").to_string(),
        "e.toml line 2: invalid value for [retention] days: 0 is outside 1..=365"
    );
    for (text, key) in [
        (
            "[authority]\ntrusted_authorities = [\"zz\"]",
            "authority.trusted_authorities",
        ),
        (
            "[authority]\ntrusted_authority_rollovers = [\"0109\"]",
            "authority.trusted_authority_rollovers",
        ),
        (
            "[publication]\nbatch_min_entries = 10\nbatch_max_entries = 5",
            "publication.batch_min_entries",
        ),
        (
            "[publication]\naccept_schemes = []",
            "publication.accept_schemes",
        ),
        (
            "[publication]\naccept_schemes = [\"tcn\"]",
            "publication.accept_schemes",
        ),
        ("[federation]\nregion = \"EU WEST\"", "federation.region"),
        (
            "[publication]\nobject_store = \"s3://Bad_Bucket\"",
            "publication.object_store",
        ),
        (
            "[publication]\nobject_store = \"file://relative\"",
            "publication.object_store",
        ),
        (
            "[publication]\nobject_store_endpoint = \"ftp://x\"",
            "publication.object_store_endpoint",
        ),
        (
            "[federation]\nbootstrap_peers = [\"/ip4/10.0.0.2/tcp/4001\"]",
            "federation.bootstrap_peers",
        ),
        ("[log]\nformat = \"xml\"", "log.format"),
        ("[storage]\nrole = \"owner\"", "storage.role"),
        ("[storage]\nrole = \"Intake\"", "storage.role"),
        (
            "[storage]\nrole = \"intake\"\n[federation]\nenabled = true",
            "storage.role",
        ),
    ] {
        let err = bad(text);
        assert!(
            matches!(&err, ConfigError::Invalid { key: k, .. } if *k == key),
            "{text}: {err}"
        );
    }
    assert_eq!(
        RawConfig::from_toml("http = 1\n", "e.toml")
            .unwrap_err()
            .to_string(),
        "e.toml line 1: invalid value for http: must be a section, [http]"
    );

    assert_eq!(
        bad("[publication]\n\nbatch_max_entries = 500").to_string(),
        "e.toml line 3: invalid value for [publication] batch_min_entries: \
         must not exceed [publication] batch_max_entries"
    );

    let env = RawConfig::from_env([("EPHEMERA_RETENTION_DAYS".to_owned(), "ten".to_owned())]);
    assert_eq!(
        load_err(env.unwrap()).to_string(),
        "environment variable EPHEMERA_RETENTION_DAYS: invalid value for [retention] days: \
         `ten` is not a whole number"
    );
    let flags = ConfigFlags::from_pairs([("http.listen", "nowhere")]);
    assert_eq!(
        load_err(RawConfig::from_flags(&[], &flags).unwrap()).to_string(),
        "flag --listen: invalid value for [http] listen: `nowhere` is not an ip:port address"
    );
}

fn load_err(raw: RawConfig) -> ConfigError {
    NodeConfig::try_from(raw).unwrap_err()
}

#[test]
fn the_documented_defaults_parse_back_to_the_defaults() {
    let text = documented_defaults();
    let raw = RawConfig::from_toml(&text, "defaults").unwrap();
    assert_eq!(raw.warnings(), []);
    assert_eq!(load(raw), NodeConfig::default());
    // Uncommenting every key gives the defaults too, with every value spelled out.
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(key) if key.contains(" = ") && !key.starts_with(' ') => key,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let raw = RawConfig::from_toml(&uncommented, "uncommented").unwrap();
    assert_eq!(raw.settings.len(), KEYS.len(), "every key is set");
    assert_eq!(raw.warnings(), []);
    assert_eq!(load(raw), NodeConfig::default());
    for key in KEYS {
        assert!(
            text.contains(&format!("# {} = ", key.name)),
            "{key} missing"
        );
        assert!(text.contains(&key.env()), "{} missing", key.env());
        if let Some(flag) = key.flag {
            assert!(text.contains(&format!("flag --{flag}")), "--{flag} missing");
        }
        if let Some(range) = key.range() {
            assert!(
                text.contains(&format!("range {range}")),
                "{key} range missing"
            );
        }
    }
    assert!(
        text.contains(
            "# (env EPHEMERA_RETENTION_DAYS, flag --retention-days, range 1..=365)\n# days = 14\n"
        ),
        "{text}"
    );
    for (section, _) in SECTIONS {
        assert!(
            text.contains(&format!("\n[{section}]\n")),
            "[{section}] missing"
        );
    }
}

#[test]
fn the_publication_key_reaches_the_policy_is_checked_and_never_shown() {
    let raw = RawConfig::from_toml(
        &format!("[publication]\npublication_key = \"{PUBLICATION_KEY}\""),
        "f",
    )
    .unwrap();
    let config = load(raw);
    assert_eq!(
        config.policy().publication_key,
        Some(PublicationKey::from_hex(PUBLICATION_KEY).unwrap())
    );
    assert!(!format!("{config:?}").contains(PUBLICATION_KEY));
    assert!(!format!("{:?}", config.policy()).contains(PUBLICATION_KEY));
    assert!(Key::find("publication.publication_key").unwrap().secret);
    let short = RawConfig::from_toml("[publication]\npublication_key = \"5a0f\"", "f").unwrap();
    let error = NodeConfig::try_from(short).unwrap_err().to_string();
    assert!(error.contains("64 hex digits"), "{error}");
}

#[test]
fn the_metrics_token_is_optional_checked_and_never_shown() {
    let none = RawConfig::from_toml("[http]\nmetrics_token = \"\"", "f").unwrap();
    assert_eq!(load(none).http.metrics_token, None);

    let file = RawConfig::from_toml("[http]\nmetrics_token = \"from-the-file-0123\"", "f").unwrap();
    let env = RawConfig::from_env([("EPHEMERA_HTTP_METRICS_TOKEN".to_owned(), SECRET.to_owned())])
        .unwrap();
    let raw = file.clone().merge(env);
    assert!(!format!("{raw:?}").contains(SECRET));
    let config = load(raw);
    let token = config.http.metrics_token.clone().unwrap();
    assert!(
        token.matches(SECRET.as_bytes()),
        "the environment wins over the file"
    );
    assert!(!token.matches(b"from-the-file-0123"));
    assert!(!token.matches(&SECRET.as_bytes()[1..]));
    assert!(!token.matches(b""));
    assert!(!format!("{config:?}").contains(SECRET));
    assert!(!format!("{token:?}").contains(SECRET));
    assert!(!documented_defaults().contains(SECRET));
    let key = Key::find("http.metrics_token").unwrap();
    assert!(key.secret);
    assert_eq!(key.default_value(), toml::Value::String(String::new()));

    // The old variable name warns without showing the value.
    let old =
        RawConfig::from_env([("EPHEMERA_METRICS_TOKEN".to_owned(), SECRET.to_owned())]).unwrap();
    assert!(!old.warnings()[0].to_string().contains(SECRET));
    assert!(
        load(old)
            .http
            .metrics_token
            .unwrap()
            .matches(SECRET.as_bytes())
    );

    for bad in [
        "short".to_owned(),
        format!("{SECRET} with spaces"),
        format!("{SECRET}{}", "x".repeat(257)),
    ] {
        let env = RawConfig::from_env([("EPHEMERA_HTTP_METRICS_TOKEN".to_owned(), bad.clone())]);
        let err = load_err(env.unwrap());
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "http.metrics_token",
                    ..
                }
            ),
            "{err}"
        );
        assert!(!err.to_string().contains(&bad), "{err}");
        let file = RawConfig::from_toml(&format!("[http]\nmetrics_token = \"{bad}\""), "f");
        let err = load_err(file.unwrap());
        assert!(!err.to_string().contains(&bad), "{err}");
        assert!(!format!("{err:?}").contains(&bad), "{err:?}");
    }
}

#[test]
fn the_operations_guide_lists_every_key_in_its_section() {
    let guide = include_str!("../../docs/OPERATIONS.md");
    let table: Vec<&str> = guide
        .split("## Configuration")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|line| line.starts_with('|'))
        .collect();
    let mut section = "(top)".to_owned();
    let mut listed = Vec::new();
    for row in table.iter().take_while(|row| !row.contains("| old key |")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if cells.len() < 3 || cells[2].starts_with("---") || cells[2] == "key" {
            continue;
        }
        if !cells[1].is_empty() {
            section = cells[1]
                .trim_matches(|c| c == '`' || c == '[' || c == ']')
                .to_owned();
        }
        for name in cells[2].split(", ") {
            listed.push(format!("{section}.{}", name.trim_matches('`')));
        }
    }
    let expected: Vec<String> = KEYS
        .iter()
        .map(|key| match key.section {
            "" => format!("(top).{}", key.name),
            _ => key.path.to_owned(),
        })
        .collect();
    assert_eq!(listed, expected);
}

#[test]
fn a_change_to_any_key_shows_in_its_setting_alone_and_no_secret_shows() {
    let defaults = NodeConfig::default().settings();
    assert_eq!(defaults.len(), KEYS.len());
    for (path, toml, _) in &samples() {
        let key = Key::find(path).unwrap();
        let config = load(RawConfig::from_toml(&file_line(key, toml), "f").unwrap());
        let settings = config.settings();
        let changed: Vec<&str> = settings
            .iter()
            .zip(&defaults)
            .filter(|(now, before)| now != before)
            .map(|((path, _), _)| *path)
            .collect();
        assert_eq!(changed, [*path], "{key}");
        for (_, text) in &settings {
            assert!(
                !text.contains(SECRET) && !text.contains(PUBLICATION_KEY),
                "{key}"
            );
        }
    }
    // Two secrets are told apart, though both are written as "".
    let token = |t: &str| {
        let mut config = NodeConfig::default();
        config.http.metrics_token = Some(MetricsToken::new(t));
        config.settings()
    };
    assert_ne!(token(SECRET), token("another-token-0123456789"));
}
