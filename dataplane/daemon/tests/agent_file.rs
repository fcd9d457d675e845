//! The file source end to end: a destination absent from the mappings file misses (the agent
//! answers NotFound); adding it to the file makes traffic flow. And the agent follows an
//! upgrade by takeover: it reconnects to the new daemon, which then gets its changes.

mod agent_common;

use std::net::IpAddr;

use agent_common::*;
use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{workspace_bin, Remote, Underlay, Vpc, VNI};

fn mapping_toml(remote: &Remote, ip: IpAddr) -> String {
    format!(
        "[[mapping]]\nvni = {VNI}\noverlay_ip = \"{ip}\"\nunderlay_ip = \"{}\"\noverlay_mac = \"{}\"\n\n",
        remote.underlay_ip(),
        remote.mac
    )
}

/// Replaces the file atomically (write, then rename), as the agent's docs ask.
fn write_file(vpc: &Vpc, text: &str) {
    let tmp = vpc.work.join("mappings.toml.tmp");
    std::fs::write(&tmp, text).expect("write mappings");
    std::fs::rename(&tmp, vpc.work.join("mappings.toml")).expect("rename mappings");
}

#[test]
fn file_source_miss_then_mapping_added() {
    require_root();
    let vpc = Vpc::new("ae5", &[Underlay::V4, Underlay::V4]).expect("topology");
    let (r0, r1) = (&vpc.remotes[0], &vpc.remotes[1]);
    let (known, absent) = (IpAddr::V4(r0.overlay_v4), IpAddr::V4(r1.overlay_v4));
    write_file(&vpc, &mapping_toml(r0, known));
    let _dp = vpc
        .start_dataplane(&workspace_bin("xvpc"), &vpc.config_toml("", ""))
        .expect("xvpc starts");
    let file = vpc.work.join("mappings.toml");
    let file = file.to_str().expect("utf-8 path");
    let _agent = start_agent(&vpc, 0, &["--source", "file", "--file", file]);
    wait_full_syncs(&vpc, 1);
    wait_ping(&vpc, known);

    let before = stats(&vpc);
    assert!(
        !ping_once(&vpc, absent),
        "a destination absent from the file answered"
    );
    wait_until(&vpc, "total.misses and control.not_found move", || {
        let now = stats(&vpc);
        counter(&now, "/total/misses") > counter(&before, "/total/misses")
            && counter(&now, "/control/not_found") > counter(&before, "/control/not_found")
    });

    write_file(
        &vpc,
        &format!("{}{}", mapping_toml(r0, known), mapping_toml(r1, absent)),
    );
    wait_ping(&vpc, absent);
    wait_mappings(&vpc, 2);
}

#[test]
fn the_agent_follows_a_takeover_to_the_new_daemon() {
    require_root();
    let vpc = Vpc::new("ae6", &[Underlay::V4, Underlay::V4]).expect("topology");
    let (r0, r1) = (&vpc.remotes[0], &vpc.remotes[1]);
    let (known, added) = (IpAddr::V4(r0.overlay_v4), IpAddr::V4(r1.overlay_v4));
    write_file(&vpc, &mapping_toml(r0, known));
    let config = vpc.config_toml("", "");
    let xvpc = workspace_bin("xvpc");
    let mut old = vpc.start_dataplane(&xvpc, &config).expect("xvpc starts");
    let file = vpc.work.join("mappings.toml");
    let file = file.to_str().expect("utf-8 path");
    let _agent = start_agent(&vpc, 0, &["--source", "file", "--file", file]);
    wait_full_syncs(&vpc, 1);
    wait_ping(&vpc, known);

    let mut new = vpc
        .start_takeover(&xvpc, &config)
        .expect("xvpc run --takeover");
    let status = old
        .wait_timeout(PATIENCE)
        .expect("wait for the old daemon")
        .unwrap_or_else(|| panic!("the old daemon still runs\n{}", logs(&vpc)));
    assert!(
        status.success(),
        "the old daemon exited with {status}\n{}",
        logs(&vpc)
    );
    // The new daemon starts with the handed-over table, then the agent reconnects and syncs it.
    wait_full_syncs(&vpc, 1);
    wait_until(
        &vpc,
        "the agent connected twice (old daemon, then new)",
        || {
            std::fs::read_to_string(vpc.work.join("agent-0.log"))
                .map(|log| log.matches("connected to the dataplane").count() >= 2)
                .unwrap_or(false)
        },
    );
    wait_ping(&vpc, known);
    // A change after the takeover reaches the new daemon.
    write_file(
        &vpc,
        &format!("{}{}", mapping_toml(r0, known), mapping_toml(r1, added)),
    );
    wait_mappings(&vpc, 2);
    wait_ping(&vpc, added);
    let status = new.terminate().expect("stop the new daemon");
    assert!(status.success(), "{}", logs(&vpc));
}
