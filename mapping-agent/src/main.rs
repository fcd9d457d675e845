//! `xvpc-agent`: the mapping agent binary.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use xvpc_agent::config::{Config, RawConfig, SourceConfig, SourceKind};
use xvpc_agent::{enter_netns, Agent, Hooks};

/// Feeds mappings from a file or etcd to the xvpc dataplane over its control socket.
#[derive(Parser, Debug)]
#[command(name = "xvpc-agent", version)]
struct Cli {
    /// TOML configuration file (see docs/MAPPING-AGENT.md). Flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Mapping source.
    #[arg(long, value_enum)]
    source: Option<SourceKind>,
    /// Mappings file (source = file).
    #[arg(long)]
    file: Option<PathBuf>,
    /// The dataplane's control socket.
    #[arg(long)]
    control: Option<PathBuf>,
    /// etcd client URLs, comma-separated (source = etcd).
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Option<Vec<String>>,
    /// etcd key prefix (source = etcd).
    #[arg(long)]
    etcd_prefix: Option<String>,
    /// Network namespace (under /run/netns) to enter at start: the management namespace.
    #[arg(long)]
    management_netns: Option<String>,
    /// Serve Prometheus `/metrics` on this management address:port (`[metrics] listen`).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Log format on stderr: `text` (colour only on a terminal) or `json` (one object per
    /// line, for journald and log shippers).
    #[arg(
        long,
        default_value = "text",
        value_name = "text|json",
        env = "XVPC_LOG_FORMAT"
    )]
    log_format: xvpc_control::logging::LogFormat,
    /// Validate the configuration (and, for the file source, the mappings file), print what
    /// it would run, and exit: nothing is connected, no namespace entered.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    xvpc_control::logging::init(cli.log_format);
    let mut raw = match &cli.config {
        Some(p) => RawConfig::from_file(p)?,
        None => RawConfig::default(),
    };
    if cli.source.is_some() {
        raw.source = cli.source;
    }
    if cli.file.is_some() {
        raw.file.path = cli.file;
    }
    if cli.control.is_some() {
        raw.control_socket = cli.control;
    }
    if cli.etcd_endpoints.is_some() {
        raw.etcd.endpoints = cli.etcd_endpoints;
    }
    if cli.etcd_prefix.is_some() {
        raw.etcd.prefix = cli.etcd_prefix;
    }
    if cli.management_netns.is_some() {
        raw.management_netns = cli.management_netns;
    }
    if let Some(listen) = cli.metrics_listen {
        let netns = raw.metrics.take().and_then(|m| m.netns);
        raw.metrics = Some(xvpc_control::metrics::MetricsConfig { listen, netns });
    }
    let cfg = Config::validate(raw).context("invalid configuration")?;
    if cli.check {
        return check(&cfg);
    }
    if let Some(ns) = &cfg.management_netns {
        // Before any thread exists, so every thread (etcd traffic included) is in it.
        enter_netns(ns).context("set management_netns to an existing namespace, or remove it")?;
        tracing::info!(netns = %ns, "entered the management network namespace");
    }
    let _agent = Agent::start(cfg, Hooks::default()).context("starting the agent")?;
    // Runs until killed (SIGTERM/SIGINT end the process; there is no state to flush: the
    // dataplane keeps its tables and the next agent full-syncs).
    loop {
        std::thread::park();
    }
}

/// `--check`: the configuration is valid; so is the mappings file of a file source.
fn check(cfg: &Config) -> anyhow::Result<()> {
    let source = match &cfg.source {
        SourceConfig::File { path, .. } => {
            let mappings = xvpc_agent::file_source::load(path, cfg.underlay_family)?;
            format!("file {} ({} mappings)", path.display(), mappings.len())
        }
        SourceConfig::Etcd {
            endpoints, prefix, ..
        } => format!(
            "etcd {} prefix {prefix} (not contacted)",
            endpoints.join(",")
        ),
    };
    println!(
        "configuration ok: source {source}, control socket {}",
        cfg.control_socket.display()
    );
    Ok(())
}
