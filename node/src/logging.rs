//! The node's logs: the operator's filter for the node's own lines, and a cap on every other
//! crate that no filter lifts.
//!
//! Dependencies log what they handle. At `trace`, sled's page cache prints the bytes of
//! stored records (uploaded tokens, keys, report HMACs), hyper and h2 print frames, and
//! libp2p names peer addresses from `debug` down. An operator who sets `log.filter =
//! "trace"` to debug the node must not get those, so lines from outside the node's own
//! crates pass only at [`DEPENDENCY_CAP`] or above ([`LIBP2P_CAP`] for the crates that name
//! addresses), whatever the filter says. The node itself never logs a request: counts go to
//! `/metrics`, and no line pairs an upload or verify event with its time.

use tracing::{Level, Metadata};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// The most detailed level a dependency's line may have.
pub const DEPENDENCY_CAP: Level = Level::INFO;
/// The most detailed level for the libp2p family, QUIC and yamux, which name peer addresses
/// in their `info` lines too.
pub const LIBP2P_CAP: Level = Level::WARN;
/// Targets (crate prefixes) held at [`LIBP2P_CAP`].
const ADDRESS_NAMING_CRATES: &[&str] = &["libp2p", "multistream_select", "yamux", "quinn"];
/// Targets held at `error`: libp2p's request-response warns once per refused inbound
/// stream, so a hostile peer could fill the log at `warn` (the node counts refusals itself).
const PEER_DRIVEN_WARNINGS: &[&str] = &["libp2p_request_response"];

/// Whether a line from `metadata` may be written at all, before the operator's filter.
pub fn passes_cap(metadata: &Metadata<'_>) -> bool {
    let target = metadata.target();
    if is_own(target) {
        return true;
    }
    let cap = if PEER_DRIVEN_WARNINGS.iter().any(|c| target.starts_with(c)) {
        Level::ERROR
    } else if ADDRESS_NAMING_CRATES.iter().any(|c| target.starts_with(c)) {
        LIBP2P_CAP
    } else {
        DEPENDENCY_CAP
    };
    // `Level` orders by verbosity: TRACE is the greatest.
    *metadata.level() <= cap
}

/// The node's own crates (`ephemera_node`, `ephemera_node_core`, `ephemera_proto` ...).
fn is_own(target: &str) -> bool {
    target == "ephemera" || target.starts_with("ephemera_") || target.starts_with("ephemera::")
}

/// Sets up the process's logs on `writer`: `filter` (an `EnvFilter` directive string; `info`
/// when it does not parse) under the dependency cap. Safe to call twice (the second call
/// does nothing).
pub fn init_with_writer<W>(format: LogFormat, filter: &str, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = FilterFn::new(passes_cap);
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(writer);
    let layer = match format {
        LogFormat::Text => layer.with_filter(cap).with_filter(filter).boxed(),
        LogFormat::Json => layer.json().with_filter(cap).with_filter(filter).boxed(),
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// Sets up the process's logs on stderr (see [`init_with_writer`]).
pub fn init(format: LogFormat, filter: &str) {
    init_with_writer(format, filter, std::io::stderr);
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::callsite::Identifier;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;

    struct Callsite;
    impl tracing::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!("only its identity is used")
        }
    }
    static CALLSITE: Callsite = Callsite;

    fn meta(target: &'static str, level: Level) -> Metadata<'static> {
        Metadata::new(
            "event",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], Identifier(&CALLSITE)),
            Kind::EVENT,
        )
    }

    #[test]
    fn dependencies_are_capped_and_the_nodes_own_lines_are_not() {
        for level in [Level::TRACE, Level::DEBUG, Level::INFO, Level::WARN] {
            assert!(passes_cap(&meta("ephemera_node::node", level)));
            assert!(passes_cap(&meta("ephemera_node_core::store", level)));
        }
        assert!(!passes_cap(&meta("sled::pagecache::logger", Level::TRACE)));
        assert!(!passes_cap(&meta("sled::tree", Level::DEBUG)));
        assert!(passes_cap(&meta("sled", Level::INFO)));
        assert!(!passes_cap(&meta("hyper::proto::h1::io", Level::TRACE)));
        assert!(!passes_cap(&meta("h2::codec", Level::DEBUG)));
        assert!(!passes_cap(&meta("libp2p_tcp", Level::INFO)));
        assert!(!passes_cap(&meta("quinn_proto::connection", Level::INFO)));
        assert!(passes_cap(&meta("libp2p_swarm", Level::WARN)));
        assert!(!passes_cap(&meta(
            "libp2p_request_response::handler",
            Level::WARN
        )));
        assert!(passes_cap(&meta("libp2p_request_response", Level::ERROR)));
        assert!(passes_cap(&meta("rustls", Level::ERROR)));
        // A crate whose name merely starts like ours is a dependency.
        assert!(!passes_cap(&meta("ephemeral_cache", Level::DEBUG)));
    }
}
