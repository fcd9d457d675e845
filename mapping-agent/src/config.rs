//! The agent's configuration: one TOML file (and CLI overrides), validated once into
//! typed values.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use xvpc_control::metrics::{MetricsConfig, MetricsError};

use crate::entry::UnderlayFamily;

use xvpc_control::config::invalid;
pub use xvpc_control::config::{ConfigError, DEFAULT_CONTROL_SOCKET};

/// Where mappings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A TOML file, watched for changes.
    File,
    /// An etcd prefix, watched.
    Etcd,
}

/// The TOML file as written (all keys optional; defaults documented in MAPPING-AGENT.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `control_socket`
    pub control_socket: Option<PathBuf>,
    /// `source`
    pub source: Option<SourceKind>,
    /// `management_netns`
    pub management_netns: Option<String>,
    /// `negative_ttl_ms`
    pub negative_ttl_ms: Option<u32>,
    /// `underlay_family`
    pub underlay_family: Option<UnderlayFamily>,
    /// `[file]`
    #[serde(default)]
    pub file: RawFile,
    /// `[etcd]`
    #[serde(default)]
    pub etcd: RawEtcd,
    /// `[miss]`
    #[serde(default)]
    pub miss: RawMiss,
    /// `[metrics]`
    pub metrics: Option<MetricsConfig>,
}

/// `[file]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    /// `file.path`
    pub path: Option<PathBuf>,
    /// `file.poll_interval_ms`
    pub poll_interval_ms: Option<u64>,
}

/// `[etcd]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEtcd {
    /// `etcd.endpoints`
    pub endpoints: Option<Vec<String>>,
    /// `etcd.prefix`
    pub prefix: Option<String>,
    /// `etcd.dial_timeout_ms`
    pub dial_timeout_ms: Option<u64>,
}

/// `[miss]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMiss {
    /// `miss.rate_per_sec`
    pub rate_per_sec: Option<u32>,
    /// `miss.burst`
    pub burst: Option<u32>,
}

impl RawConfig {
    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses TOML text (`path` is for messages).
    pub fn from_toml(path: &Path, text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

/// The validated source settings.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// `source = "file"`
    File {
        /// The mappings file.
        path: PathBuf,
        /// How often its metadata is checked.
        poll_interval: Duration,
    },
    /// `source = "etcd"`
    Etcd {
        /// Client URLs (`http://host:port`).
        endpoints: Vec<String>,
        /// Key prefix; keys are `<prefix>/<vni>/<overlay_ip>`.
        prefix: String,
        /// Connection timeout.
        dial_timeout: Duration,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The dataplane's Unix control socket.
    pub control_socket: PathBuf,
    /// Where mappings come from.
    pub source: SourceConfig,
    /// Network namespace (name under /run/netns) entered at start.
    pub management_netns: Option<String>,
    /// TTL of NotFound answers.
    pub negative_ttl_ms: u32,
    /// Allowed underlay family.
    pub underlay_family: UnderlayFamily,
    /// Miss token bucket: tokens per second.
    pub miss_rate_per_sec: u32,
    /// Miss token bucket: capacity.
    pub miss_burst: u32,
    /// The Prometheus listener, off when absent.
    pub metrics: Option<MetricsConfig>,
}

impl Config {
    /// Validates a raw configuration, naming the key at fault.
    pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let control_socket = raw
            .control_socket
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET));
        if control_socket.as_os_str().is_empty() {
            return Err(invalid("control_socket", "must not be empty"));
        }
        let source = match raw.source {
            None => return Err(invalid("source", "missing: set \"file\" or \"etcd\"")),
            Some(SourceKind::File) => {
                let path = raw
                    .file
                    .path
                    .ok_or_else(|| invalid("file.path", "required with source = \"file\""))?;
                let ms = raw.file.poll_interval_ms.unwrap_or(10);
                if !(1..=20).contains(&ms) {
                    return Err(invalid(
                        "file.poll_interval_ms",
                        format!("{ms} is not in 1..=20"),
                    ));
                }
                SourceConfig::File {
                    path,
                    poll_interval: Duration::from_millis(ms),
                }
            }
            Some(SourceKind::Etcd) => {
                let endpoints = raw
                    .etcd
                    .endpoints
                    .unwrap_or_else(|| vec!["http://127.0.0.1:2379".into()]);
                if endpoints.is_empty() {
                    return Err(invalid("etcd.endpoints", "must list at least one URL"));
                }
                for e in &endpoints {
                    if !(e.starts_with("http://") || e.starts_with("https://")) {
                        return Err(invalid(
                            "etcd.endpoints",
                            format!("{e:?} is not an http:// or https:// URL"),
                        ));
                    }
                }
                let prefix = raw.etcd.prefix.unwrap_or_else(|| "/xvpc/mappings".into());
                if !prefix.starts_with('/') || prefix.trim_end_matches('/').is_empty() {
                    return Err(invalid(
                        "etcd.prefix",
                        format!("{prefix:?} must start with '/' and not be just '/'"),
                    ));
                }
                let ms = raw.etcd.dial_timeout_ms.unwrap_or(2000);
                if !(1..=60_000).contains(&ms) {
                    return Err(invalid(
                        "etcd.dial_timeout_ms",
                        format!("{ms} is not in 1..=60000"),
                    ));
                }
                SourceConfig::Etcd {
                    endpoints,
                    prefix,
                    dial_timeout: Duration::from_millis(ms),
                }
            }
        };
        if let Some(ns) = &raw.management_netns {
            if ns.is_empty() || ns.contains('/') || ns == "." || ns == ".." {
                return Err(invalid(
                    "management_netns",
                    format!("{ns:?} is not a namespace name under /run/netns"),
                ));
            }
        }
        let negative_ttl_ms = raw.negative_ttl_ms.unwrap_or(5000);
        if !(1..=3_600_000).contains(&negative_ttl_ms) {
            return Err(invalid(
                "negative_ttl_ms",
                format!("{negative_ttl_ms} is not in 1..=3600000"),
            ));
        }
        let miss_rate_per_sec = raw.miss.rate_per_sec.unwrap_or(1000);
        if miss_rate_per_sec == 0 {
            return Err(invalid("miss.rate_per_sec", "must be at least 1"));
        }
        let miss_burst = raw.miss.burst.unwrap_or(200);
        if miss_burst == 0 {
            return Err(invalid("miss.burst", "must be at least 1"));
        }
        if let Some(m) = &raw.metrics {
            // In the management namespace already, a wildcard address stays on that side.
            let effective = MetricsConfig {
                netns: m.netns.clone().or_else(|| raw.management_netns.clone()),
                ..m.clone()
            };
            effective.validate(&[]).map_err(|e| match e {
                MetricsError::Invalid {
                    key: "netns",
                    reason,
                } => invalid("metrics.netns", reason),
                MetricsError::Invalid { reason, .. } => invalid("metrics.listen", reason),
                other => invalid("metrics", other.to_string()),
            })?;
        }
        Ok(Config {
            metrics: raw.metrics,
            control_socket,
            source,
            management_netns: raw.management_netns,
            negative_ttl_ms,
            underlay_family: raw.underlay_family.unwrap_or_default(),
            miss_rate_per_sec,
            miss_burst,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::validate(RawConfig::from_toml(Path::new("t.toml"), text)?)
    }

    #[test]
    fn good_configs() {
        let c = parse("source = \"file\"\n[file]\npath = \"/tmp/m.toml\"\n").expect("file config");
        assert!(matches!(c.source, SourceConfig::File { .. }));
        assert_eq!(c.control_socket, PathBuf::from(DEFAULT_CONTROL_SOCKET));
        let c = parse(
            "source = \"etcd\"\ncontrol_socket = \"/tmp/c.sock\"\nmanagement_netns = \"mgmt\"\n\
             [etcd]\nendpoints = [\"http://198.18.0.1:2379\"]\nprefix = \"/p\"\n[miss]\nrate_per_sec = 5\n",
        )
        .expect("etcd config");
        assert_eq!(c.miss_rate_per_sec, 5);
        assert_eq!(c.management_netns.as_deref(), Some("mgmt"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("", "`source`"),
            ("source = \"file\"", "`file.path`"),
            (
                "source = \"etcd\"\n[etcd]\nendpoints = []",
                "`etcd.endpoints`",
            ),
            (
                "source = \"etcd\"\n[etcd]\nendpoints = [\"127.0.0.1:1\"]",
                "`etcd.endpoints`",
            ),
            (
                "source = \"etcd\"\n[etcd]\nprefix = \"nope\"",
                "`etcd.prefix`",
            ),
            (
                "source = \"etcd\"\nnegative_ttl_ms = 0",
                "`negative_ttl_ms`",
            ),
            (
                "source = \"etcd\"\nmanagement_netns = \"a/b\"",
                "`management_netns`",
            ),
            ("source = \"etcd\"\n[miss]\nburst = 0", "`miss.burst`"),
            (
                "source = \"file\"\n[file]\npath = \"x\"\npoll_interval_ms = 100",
                "`file.poll_interval_ms`",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(key), "{text:?}: {err} should name {key}");
        }
        let err = parse("source = \"ftp\"").expect_err("bad enum").to_string();
        assert!(err.contains("source"), "{err}");
        let err = parse("source = \"file\"\nbogus = 1")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("bogus"), "{err}");
    }
}
