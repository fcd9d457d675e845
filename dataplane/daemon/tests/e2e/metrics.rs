//! Prometheus metrics and `xvpc stats` for people: the daemon binds its listener in a
//! management namespace, the agent serves its own there, a real Prometheus server scrapes
//! both, and the drop counter it reports moves by exactly the spoofed frames sent. The guest
//! cannot connect to either listener. The output passes `promtool check metrics`, the
//! Grafana dashboard in docs/ names only metrics that exist and every query in it runs.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use xvpc_testbed::vpc::{workspace_bin, Underlay, Vpc, GATEWAY_V4, GUEST_MAC};
use xvpc_testbed::{require_root, ChildGuard, Netns};

use crate::common::*;

/// The management side of the out-of-band link: the metrics listeners and Prometheus.
const MGMT_IP: &str = "198.18.201.1";
/// The dataplane host's side of that link.
const HOST_IP: &str = "198.18.201.2";
const DAEMON_PORT: u16 = 9464;
const AGENT_PORT: u16 = 9465;
const PROM_PORT: u16 = 9090;

/// `curl` in `ns`; `None` if the request failed.
fn get(ns: &Netns, url: &str, extra: &[&str]) -> Option<String> {
    let mut args = vec!["curl", "-sf", "--max-time", "5"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = ns.exec(&args).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An instant query through Prometheus's HTTP API: the result vector.
fn query(mgmt: &Netns, expr: &str) -> Vec<Value> {
    let body = get(
        mgmt,
        &format!("http://{MGMT_IP}:{PROM_PORT}/api/v1/query"),
        &["-G", "--data-urlencode", &format!("query={expr}")],
    )
    .unwrap_or_else(|| panic!("Prometheus query failed: {expr}"));
    let v: Value = serde_json::from_str(&body).expect("Prometheus answers JSON");
    assert_eq!(v["status"], "success", "{expr}: {body}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// The single value of an instant query, if it has one.
fn scalar(mgmt: &Netns, expr: &str) -> Option<f64> {
    let r = query(mgmt, expr);
    let v = r.first()?["value"][1].as_str()?.parse().ok()?;
    Some(v)
}

fn promtool_check(text: &str, what: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics on {what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Metric family names (from the HELP lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Every `expr` in a Grafana dashboard.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// The `xvpc_*` names a PromQL expression uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("xvpc_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        names.insert(expr[start..end].to_string());
        i = end;
    }
    names
}

/// `f`'s first `Some` within 30 s.
fn wait_for_bounded<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for_bounded(f).unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

#[test]
fn prometheus_scrapes_both_processes_and_the_guest_cannot_reach_them() {
    require_root();
    let vpc = Vpc::new("met", &[Underlay::V4]).expect("topology");
    let mgmt = vpc
        .add_management("metm", MGMT_IP, HOST_IP)
        .expect("management namespace and its out-of-band link");

    // The daemon runs in the dataplane namespace and binds its listener in the management
    // one; JSON logs, to check they are one object per line.
    let config = format!(
        "{}\n[metrics]\nlisten = \"{MGMT_IP}:{DAEMON_PORT}\"\nnetns = \"{}\"\n",
        vpc.config_toml("", ""),
        mgmt.name()
    );
    let mut daemon = vpc
        .start_dataplane_with_env(&xvpc(), &config, &["XVPC_LOG_FORMAT=json"])
        .unwrap_or_else(|e| panic!("xvpc run did not start: {e}"));

    // The agent enters the management namespace and serves its metrics there (text logs
    // to a file: no colour codes).
    let mappings = vpc.work.join("mappings.toml");
    // The agent's file format names the table `mapping`.
    let text = static_mappings(&vpc).replace("[[mappings]]", "[[mapping]]");
    std::fs::write(&mappings, text).expect("mappings file");
    let agent_log = vpc.work.join("agent.log");
    let log = std::fs::File::create(&agent_log).expect("agent log");
    let agent = Command::new(workspace_bin("xvpc-agent"))
        .args(["--source", "file", "--file"])
        .arg(&mappings)
        .arg("--control")
        .arg(vpc.control_socket())
        .args(["--management-netns", mgmt.name()])
        .args(["--metrics-listen", &format!("{MGMT_IP}:{AGENT_PORT}")])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start xvpc-agent");
    let _agent = ChildGuard::new(agent);
    let synced =
        wait_for_bounded(|| (stats(&vpc)["control"]["full_syncs"].as_u64()? >= 1).then_some(()));
    assert!(
        synced.is_some(),
        "the agent did not sync the dataplane; agent log:\n{}",
        std::fs::read_to_string(&agent_log).unwrap_or_default()
    );

    let daemon_url = format!("http://{MGMT_IP}:{DAEMON_PORT}/metrics");
    let agent_url = format!("http://{MGMT_IP}:{AGENT_PORT}/metrics");
    let daemon_text = wait_for("the daemon's /metrics", || get(&mgmt, &daemon_url, &[]));
    let agent_text = wait_for("the agent's /metrics", || get(&mgmt, &agent_url, &[]));
    promtool_check(&daemon_text, "the daemon's /metrics");
    promtool_check(&agent_text, "the agent's /metrics");
    assert!(
        daemon_text.contains("\nxvpc_control_agent_connected 1\n"),
        "{daemon_text}"
    );
    assert!(
        agent_text.contains("\nxvpc_agent_dataplane_connected 1\n"),
        "{agent_text}"
    );

    // The guest cannot connect to either listener, at any address it could try: every
    // address of the management namespace, the host's end of the link, its gateway.
    // Positive controls first, so the check can fail.
    for port in [DAEMON_PORT, AGENT_PORT] {
        mgmt.sh(&format!("nc -z -w1 {MGMT_IP} {port}"))
            .expect("the listener answers in the management namespace");
        vpc.dataplane
            .sh(&format!("nc -z -w1 {MGMT_IP} {port}"))
            .expect("the listener answers over the out-of-band link");
        for addr in [MGMT_IP, HOST_IP, GATEWAY_V4, "127.0.0.1"] {
            assert!(
                vpc.guest.sh(&format!("nc -z -w1 {addr} {port}")).is_err(),
                "the guest connected to a metrics listener at {addr}:{port}"
            );
        }
    }
    // Nothing listens on the dataplane namespace's own addresses either.
    let listening = vpc.dataplane.sh("ss -Hltn").expect("ss");
    assert!(
        !listening.contains(&format!(":{DAEMON_PORT}")),
        "the daemon listens in the dataplane namespace:\n{listening}"
    );

    // A real Prometheus in the management namespace scrapes both, every second.
    let prom_dir = vpc.work.join("prometheus");
    std::fs::create_dir_all(&prom_dir).expect("prometheus dir");
    let prom_config = prom_dir.join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n\
             - job_name: xvpc\n  static_configs:\n  - targets: ['{MGMT_IP}:{DAEMON_PORT}']\n\
             - job_name: xvpc-agent\n  static_configs:\n  - targets: ['{MGMT_IP}:{AGENT_PORT}']\n"
        ),
    )
    .expect("prometheus config");
    let _prom = mgmt
        .spawn(&[
            "sh",
            "-c",
            &format!(
                "exec prometheus --config.file={} --storage.tsdb.path={} \
                 --web.listen-address={MGMT_IP}:{PROM_PORT} >{}/log 2>&1",
                prom_config.display(),
                prom_dir.join("data").display(),
                prom_dir.display()
            ),
        ])
        .expect("start prometheus (apt-get install prometheus)");
    let prom_log = || std::fs::read_to_string(prom_dir.join("log")).unwrap_or_default();
    wait_for("Prometheus to be ready", || {
        get(&mgmt, &format!("http://{MGMT_IP}:{PROM_PORT}/-/ready"), &[])
    });
    let spoofed = "sum(xvpc_drops_total{job=\"xvpc\",reason=\"spoofed_source_ip\"})";
    let before = wait_for("Prometheus to scrape both targets", || {
        let ups = query(&mgmt, "up == 1");
        (ups.len() == 2).then_some(())?;
        scalar(&mgmt, spoofed)
    });
    let stats_before = totals(&vpc);

    let n = 37;
    scapy(
        &vpc.guest,
        &format!(
            r#"sendp([Ether(src="{GUEST_MAC}", dst="{GATEWAY_MAC}") / IP(src="198.18.10.99", dst="{r4}") / UDP(sport=4000, dport=5000) / Raw(b"spoofed")] * {n}, iface="g0")"#,
            GATEWAY_MAC = xvpc_testbed::vpc::GATEWAY_MAC,
            r4 = vpc.remotes[0].overlay_v4,
        ),
    );
    assert_deltas(&vpc, &stats_before, &[("spoofed_source_ip", n)]);
    let after = wait_for("Prometheus to see the spoofed frames", || {
        scalar(&mgmt, spoofed).filter(|v| *v >= before + n as f64)
    });
    assert_eq!(
        after - before,
        n as f64,
        "Prometheus's drop counter moved by exactly the {n} spoofed frames; log:\n{}",
        prom_log()
    );
    // The agent's state reached Prometheus too.
    assert_eq!(scalar(&mgmt, "xvpc_agent_dataplane_connected"), Some(1.0));
    assert_eq!(scalar(&mgmt, "xvpc_agent_source_ready"), Some(1.0));

    // The dashboard parses, names only metrics the two processes expose, and every query
    // in it is valid PromQL that Prometheus runs.
    let dashboard_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/grafana/xvpc-dashboard.json");
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(&dashboard_path).expect("docs/grafana/xvpc-dashboard.json"),
    )
    .expect("the dashboard is JSON");
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 10, "the dashboard has its queries: {all:?}");
    let known: BTreeSet<String> = families(&daemon_text)
        .union(&families(&agent_text))
        .cloned()
        .collect();
    for expr in &all {
        for name in metric_names(expr) {
            assert!(
                known.contains(&name),
                "the dashboard names {name}, which neither process exposes ({expr})"
            );
        }
        query(&mgmt, &expr.replace("$__rate_interval", "30s"));
    }
    let busy = query(
        &mgmt,
        &all.iter()
            .find(|e| e.contains("busy"))
            .expect("a busy % panel")
            .replace("$__rate_interval", "30s"),
    );
    assert_eq!(busy.len(), 1, "one worker's busy %: {busy:?}");

    // `xvpc stats` prints a table with the drop reason, and `--watch` refreshes it.
    let table = Command::new(xvpc())
        .args(["stats", "--socket"])
        .arg(vpc.stats_socket())
        .output()
        .expect("xvpc stats");
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    let reason_row = table
        .lines()
        .find(|l| l.starts_with("spoofed_source_ip "))
        .unwrap_or_else(|| panic!("a spoofed_source_ip row:\n{table}"));
    assert_eq!(
        reason_row.split_whitespace().nth(1),
        Some(n.to_string().as_str()),
        "{table}"
    );
    assert!(table.contains("agent: connected"), "{table}");
    let watch = Command::new(xvpc())
        .args(["stats", "--watch", "0.3", "--count", "2", "--socket"])
        .arg(vpc.stats_socket())
        .output()
        .expect("xvpc stats --watch");
    let watch = String::from_utf8_lossy(&watch.stdout).into_owned();
    assert_eq!(watch.matches("\ntotal ").count(), 2, "{watch}");
    assert!(watch.contains("rates over the last 0."), "{watch}");
    println!("xvpc stats:\n{table}");

    // Logs: the daemon's are one JSON object per line, the agent's carry no colour codes.
    stop(&vpc, &mut daemon);
    let daemon_log = vpc.dataplane_log();
    let mut events = 0;
    for line in daemon_log.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a daemon log line is not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
        events += 1;
    }
    assert!(
        events >= 3,
        "the daemon logged its start and stop:\n{daemon_log}"
    );
    let agent_text_log = std::fs::read_to_string(&agent_log).expect("agent log");
    assert!(
        agent_text_log.contains("serving Prometheus metrics") && !agent_text_log.contains('\x1b'),
        "the agent's log has no colour codes when it is not a terminal:\n{agent_text_log}"
    );
}
