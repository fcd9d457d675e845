//! The file source, and restarts of the agent process (the real binary).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use xvpc_agent::config::{Config, SourceConfig};
use xvpc_agent::entry::UnderlayFamily;
use xvpc_agent::{Agent, Hooks};
use xvpc_control::Message;
use xvpc_model::Mapping;

fn toml_of(ms: &[Mapping]) -> String {
    ms.iter()
        .map(|m| {
            format!(
                "[[mapping]]\nvni = {}\noverlay_ip = \"{}\"\nunderlay_ip = \"{}\"\noverlay_mac = \"{}\"\n\n",
                m.vni, m.overlay_ip, m.underlay_ip, m.overlay_mac
            )
        })
        .collect()
}

/// Replaces the file atomically (as editors and config management do).
fn write_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write temp mappings file");
    std::fs::rename(&tmp, path).expect("rename mappings file");
}

fn file_config(socket: &Path, file: &Path) -> Config {
    Config {
        control_socket: socket.to_owned(),
        source: SourceConfig::File {
            path: file.to_owned(),
            poll_interval: Duration::from_millis(5),
        },
        management_netns: None,
        negative_ttl_ms: 1000,
        underlay_family: UnderlayFamily::Any,
        miss_rate_per_sec: 1000,
        miss_burst: 100,
        metrics: None,
    }
}

#[test]
fn file_edits_become_deltas_and_broken_files_are_ignored() {
    let peer = Peer::new();
    let file = peer.dir.path().join("mappings.toml");
    write_file(&file, &toml_of(&[mapping(1), mapping(2)]));
    let agent = Agent::start(file_config(&peer.path, &file), Hooks::default()).expect("agent");
    let mut conn = peer.accept();
    let sync = conn.full_sync();
    assert_eq!(sync.len(), 2);

    // Edit: 1 changed, 2 removed, 3 added.
    let mut changed = mapping(1);
    changed.underlay_ip = "2001:2::99".parse().expect("ip");
    write_file(&file, &toml_of(&[changed, mapping(3)]));
    let mut got = vec![conn.next_delta(), conn.next_delta(), conn.next_delta()];
    got.sort_by_key(|m| format!("{m:?}"));
    let mut want = vec![
        Message::Upsert(changed),
        Message::Delete(mapping(2).key()),
        Message::Upsert(mapping(3)),
    ];
    want.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(got, want);

    // A broken file: reported, last good state kept, nothing sent.
    write_file(&file, "[[mapping]]\nvni = 1\noverlay_ip = \"not an ip\"\n");
    wait_until("broken file noticed", || agent.stats().invalid_skipped == 1);
    assert_eq!(agent.mappings().len(), 2);
    // An invalid entry (multicast MAC) is refused the same way.
    write_file(
        &file,
        &toml_of(&[changed, mapping(3)]).replace("02:00:00:00:03:01", "03:00:00:00:03:01"),
    );
    wait_until("invalid file noticed", || {
        agent.stats().invalid_skipped == 2
    });
    // The next good file is diffed against the last good state.
    write_file(&file, &toml_of(&[changed, mapping(3), mapping(4)]));
    assert_eq!(conn.next_delta(), Message::Upsert(mapping(4)));

    // Misses come from the table.
    conn.send(&Message::Miss {
        key: mapping(3).key(),
    });
    assert_eq!(conn.next_msg(), Message::Upsert(mapping(3)));
    conn.send(&Message::Miss {
        key: mapping(9).key(),
    });
    assert_eq!(
        conn.next_msg(),
        Message::NotFound {
            key: mapping(9).key(),
            ttl_ms: 1000
        }
    );
    let s = conn.stats();
    assert_eq!((s.misses, s.not_found, s.mappings), (2, 1, 3));
}

#[test]
fn dataplane_restart_gets_a_full_sync() {
    let peer = Peer::new();
    let file = peer.dir.path().join("mappings.toml");
    write_file(&file, &toml_of(&[mapping(1), mapping(2)]));
    let _agent = Agent::start(file_config(&peer.path, &file), Hooks::default()).expect("agent");
    let conn = peer.accept();
    let first = conn.full_sync();
    drop(conn); // the dataplane goes away
    write_file(&file, &toml_of(&[mapping(1), mapping(2), mapping(3)]));
    let conn = peer.accept();
    let second = conn.full_sync();
    assert_eq!(first.len(), 2);
    assert_eq!(
        second.len(),
        3,
        "the new connection gets the whole current table"
    );
}

/// The agent binary, killed by pid on drop.
struct AgentProcess(Child);

impl AgentProcess {
    fn spawn(socket: &Path, file: &Path) -> AgentProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_xvpc-agent"))
            .args(["--source", "file", "--file"])
            .arg(file)
            .arg("--control")
            .arg(socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start xvpc-agent");
        AgentProcess(child)
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn agent_restart_full_syncs_again() {
    let peer = Peer::new();
    let file = peer.dir.path().join("mappings.toml");
    let all: Vec<_> = (0..5000).map(mapping).collect();
    write_file(&file, &toml_of(&all));
    let agent = AgentProcess::spawn(&peer.path, &file);
    let conn = peer.accept();
    assert_eq!(conn.full_sync().len(), 5000);
    let first_instance = conn.instance;
    drop(agent); // killed
    assert!(
        conn.next().is_err(),
        "the dataplane sees the connection drop"
    );

    let _agent = AgentProcess::spawn(&peer.path, &file);
    let conn = peer.accept();
    assert_ne!(
        conn.instance, first_instance,
        "a new instance id per process start"
    );
    let sync = conn.full_sync();
    assert_eq!(sync.len(), 5000);
    for m in &all {
        assert_eq!(sync.get(&m.key()), Some(m));
    }
}

#[test]
fn bad_config_fails_fast_naming_the_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, "source = \"etcd\"\n[etcd]\nprefix = \"relative\"\n")
        .expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_xvpc-agent"))
        .arg("--config")
        .arg(&cfg)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("etcd.prefix"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_xvpc-agent"))
        .args([
            "--source",
            "file",
            "--file",
            "/nonexistent",
            "--management-netns",
            "xvpc-no-such-ns",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("xvpc-no-such-ns"), "{err}");
}

/// `--check` validates the configuration and the mappings file without running.
#[test]
fn check_validates_config_and_mappings_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("mappings.toml");
    let check = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_xvpc-agent"))
            .args(["--source", "file", "--check", "--file"])
            .arg(file)
            .arg("--control")
            .arg(dir.path().join("no-dataplane.sock"))
            .output()
            .expect("run xvpc-agent --check")
    };
    std::fs::write(&file, toml_of(&[mapping(1), mapping(2)])).expect("write mappings");
    let out = check(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("2 mappings"), "{text}");

    // A bad entry: the check fails, naming the file and the entry.
    std::fs::write(
        &file,
        format!("{}[[mapping]]\nvni = 100\n", toml_of(&[mapping(1)])),
    )
    .expect("write mappings");
    let out = check(&file);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a broken mappings file passed the check"
    );
    assert!(err.contains("mappings.toml"), "{err}");
    let out = check(&dir.path().join("missing.toml"));
    assert!(
        !out.status.success(),
        "a missing mappings file passed the check"
    );
}
