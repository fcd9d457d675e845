//! Prometheus metrics, shared by the dataplane and the agent: the `[metrics]` config
//! section, a listener bound on the management side (optionally inside a management network
//! namespace), the text exposition format, and a minimal HTTP/1.0 server for `/metrics`.
//!
//! Serving is off the packet path: each scrape calls a render function that reads what the
//! workers already publish (the same slots `xvpc stats` reads).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

/// Why the metrics listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The management namespace could not be opened or entered.
    #[error("metrics.netns: cannot enter network namespace /run/netns/{name}: {reason}")]
    Netns {
        /// The namespace name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The address could not be bound.
    #[error("metrics.listen: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A value of the `[metrics]` section is not acceptable.
    #[error("config key `metrics.{key}`: {reason}")]
    Invalid {
        /// The key below `metrics.`.
        key: &'static str,
        /// What is wrong and what is expected.
        reason: String,
    },
}

/// The `[metrics]` config section. Absent: no listener.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address and port to serve `/metrics` on: a management address, never one the guest
    /// can reach.
    pub listen: SocketAddr,
    /// Network namespace (under /run/netns) to bind the listener in; the process itself
    /// stays where it is.
    pub netns: Option<String>,
}

impl MetricsConfig {
    /// Checks the values; `guest_reachable` are addresses the guest can send to (its
    /// gateway), which the listener must never use.
    pub fn validate(&self, guest_reachable: &[IpAddr]) -> Result<(), MetricsError> {
        if let Some(ns) = &self.netns {
            if ns.is_empty() || ns.contains('/') || ns == "." || ns == ".." {
                return Err(MetricsError::Invalid {
                    key: "netns",
                    reason: format!("{ns:?} is not a namespace name under /run/netns"),
                });
            }
        }
        let ip = self.listen.ip();
        if ip.is_unspecified() && self.netns.is_none() {
            return Err(MetricsError::Invalid {
                key: "listen",
                reason: format!(
                    "{ip} listens on every address of this namespace: give a management \
                     address, or set metrics.netns to a management namespace"
                ),
            });
        }
        if guest_reachable.contains(&ip) {
            return Err(MetricsError::Invalid {
                key: "listen",
                reason: format!("{ip} is an address the guest talks to"),
            });
        }
        if self.listen.port() == 0 {
            return Err(MetricsError::Invalid {
                key: "listen",
                reason: "give a port".into(),
            });
        }
        Ok(())
    }

    /// Binds the listener, inside `netns` if set. Only a short-lived thread enters the
    /// namespace: a socket keeps the namespace it was created in.
    pub fn bind(&self) -> Result<TcpListener, MetricsError> {
        let addr = self.listen;
        let Some(ns) = self.netns.clone() else {
            return TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source });
        };
        let netns_err = |reason: String| MetricsError::Netns {
            name: ns.clone(),
            reason,
        };
        let file = std::fs::File::open(format!("/run/netns/{ns}"))
            .map_err(|e| netns_err(e.to_string()))?;
        let bound = std::thread::Builder::new()
            .name("metrics-bind".into())
            .spawn(move || -> Result<TcpListener, MetricsError> {
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    MetricsError::Netns {
                        name: String::new(),
                        reason: e.to_string(),
                    }
                })?;
                TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })
            })
            .map_err(|e| netns_err(e.to_string()))?
            .join()
            .map_err(|_| netns_err("the binding thread panicked".into()))?;
        bound.map_err(|e| match e {
            MetricsError::Netns { reason, .. } => netns_err(reason),
            other => other,
        })
    }
}

/// Serves `GET /metrics` on `listener` with the text `render` returns, until `stop`. One
/// scrape at a time; a slow client is cut off after a few seconds.
pub fn serve(listener: TcpListener, render: impl Fn() -> String, stop: Arc<AtomicBool>) {
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!(error = %e, "metrics listener: cannot poll for shutdown; not serving");
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // A client that went away or sent garbage is not our problem.
                let _ = answer(stream, &render);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept on the metrics listener failed");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn answer(mut stream: TcpStream, render: &impl Fn() -> String) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.set_write_timeout(Some(Duration::from_secs(3)))?;
    // Read the request head (bounded): only its first line matters.
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next(), parts.next());
    let path = path.map(|p| p.split('?').next().unwrap_or(p));
    let (status, content_type, body) = match (method, path) {
        (Some("GET"), Some("/metrics")) => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        (Some("GET"), _) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics\n".into(),
        ),
    };
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Prometheus metric types used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets on restart).
    Counter,
    /// Goes up and down.
    Gauge,
}

struct Family {
    help: String,
    kind: Kind,
    samples: Vec<(String, String)>,
}

/// Builds one exposition in the Prometheus text format: samples of a family are grouped
/// under its HELP and TYPE lines whatever order they are added in.
#[derive(Default)]
pub struct Exposition {
    families: BTreeMap<String, Family>,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a counter sample (`name` must end in `_total`).
    pub fn counter(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: u64) {
        self.sample(name, help, Kind::Counter, labels, value.to_string());
    }

    /// Adds a counter of seconds given in nanoseconds.
    pub fn counter_seconds(&mut self, name: &str, help: &str, labels: &[(&str, &str)], ns: u64) {
        self.sample(
            name,
            help,
            Kind::Counter,
            labels,
            format_float(ns as f64 / 1e9),
        );
    }

    /// Adds a gauge sample.
    pub fn gauge(&mut self, name: &str, help: &str, labels: &[(&str, &str)], value: f64) {
        self.sample(name, help, Kind::Gauge, labels, format_float(value));
    }

    fn sample(&mut self, name: &str, help: &str, kind: Kind, labels: &[(&str, &str)], v: String) {
        let family = self
            .families
            .entry(name.to_string())
            .or_insert_with(|| Family {
                help: help.to_string(),
                kind,
                samples: Vec::new(),
            });
        let mut series = String::new();
        if !labels.is_empty() {
            series.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    series.push(',');
                }
                let _ = write!(series, "{k}=\"{}\"", escape_label(val));
            }
            series.push('}');
        }
        family.samples.push((series, v));
    }

    /// The names of the families added so far.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.families.keys().map(String::as_str)
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        for (name, f) in &self.families {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (series, value) in &f.samples {
                let _ = writeln!(out, "{name}{series} {value}");
            }
        }
        out
    }
}

fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_grouped_and_labels_escaped() {
        let mut e = Exposition::new();
        e.counter("x_total", "X.", &[("worker", "0")], 1);
        e.gauge("a_ratio", "A.", &[], 0.5);
        e.counter("x_total", "X.", &[("worker", "1"), ("why", "a\"b\\")], 2);
        assert_eq!(
            e.render(),
            "# HELP a_ratio A.\n# TYPE a_ratio gauge\na_ratio 0.5\n\
             # HELP x_total X.\n# TYPE x_total counter\nx_total{worker=\"0\"} 1\n\
             x_total{worker=\"1\",why=\"a\\\"b\\\\\"} 2\n"
        );
    }

    #[test]
    fn validate_refuses_guest_side_and_wildcard_addresses() {
        let cfg = |listen: &str, netns: Option<&str>| MetricsConfig {
            listen: listen.parse().expect("literal"),
            netns: netns.map(str::to_string),
        };
        let gw: IpAddr = "198.18.10.1".parse().expect("literal");
        assert!(cfg("198.18.200.2:9464", None).validate(&[gw]).is_ok());
        assert!(cfg("0.0.0.0:9464", Some("mgmt")).validate(&[gw]).is_ok());
        for (bad, ns, key) in [
            ("0.0.0.0:9464", None, "listen"),
            ("[::]:9464", None, "listen"),
            ("198.18.10.1:9464", None, "listen"),
            ("198.18.200.2:0", None, "listen"),
            ("198.18.200.2:9464", Some("a/b"), "netns"),
        ] {
            match cfg(bad, ns).validate(&[gw]) {
                Err(MetricsError::Invalid { key: k, .. }) => assert_eq!(k, key, "{bad}"),
                other => panic!("{bad} {ns:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn serves_metrics_and_404() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let server = {
            let stop = stop.clone();
            std::thread::spawn(move || serve(listener, || "m_total 1\n".into(), stop))
        };
        let get = |path: &str| {
            let mut s = TcpStream::connect(addr).expect("connect");
            write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
            let mut r = String::new();
            s.read_to_string(&mut r).expect("read");
            r
        };
        let ok = get("/metrics");
        assert!(ok.starts_with("HTTP/1.0 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nm_total 1\n"), "{ok}");
        assert!(get("/").starts_with("HTTP/1.0 404"));
        stop.store(true, Ordering::Relaxed);
        server.join().expect("server thread");
    }
}
