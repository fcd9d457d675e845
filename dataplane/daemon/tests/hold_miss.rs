//! A frame to an unmapped destination is held while the agent is asked, and sent as soon as
//! the answer arrives: the guest's very first packets get through. The agent here is a
//! minimal client of the real control protocol that answers each miss with the mapping.

use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use xvpc_control::{handshake, read_message, write_message, Message, Role};
use xvpc_core::model::{MacAddr, Mapping, Vni};
use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{workspace_bin, Underlay, Vpc, VNI};

fn stats(vpc: &Vpc) -> serde_json::Value {
    let out = vpc
        .dataplane
        .exec(&[
            workspace_bin("xvpc").to_str().expect("utf-8 path"),
            "stats",
            "--json",
            "--socket",
            vpc.stats_socket().to_str().expect("utf-8 path"),
        ])
        .expect("xvpc stats");
    serde_json::from_slice(&out.stdout).expect("stats JSON")
}

#[test]
fn first_packets_to_an_unmapped_address_are_held_until_the_mapping_arrives() {
    require_root();
    let vpc = Vpc::new("hld", &[Underlay::V4]).expect("topology");
    let remote = &vpc.remotes[0];
    let _daemon = vpc
        .start_dataplane(&workspace_bin("xvpc"), &vpc.config_toml("", ""))
        .expect("xvpc starts");

    let mut control = UnixStream::connect(vpc.control_socket()).expect("control socket");
    control
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    handshake(&mut control, Role::Agent, 7).expect("handshake");
    let known = Mapping {
        vni: Vni::new(VNI).expect("vni"),
        overlay_ip: IpAddr::V4(remote.overlay_v4),
        underlay_ip: remote.underlay_ip(),
        overlay_mac: remote.mac.parse::<MacAddr>().expect("mac"),
    };
    let mut writer = control.try_clone().expect("clone");
    let answering = std::thread::spawn(move || {
        let mut answered = Vec::new();
        // Answer misses until the daemon has asked for the key we know (bounded by the timeout).
        while let Ok(message) = read_message(&mut control) {
            if let Message::Miss { key } = message {
                answered.push(key);
                if key == known.key() {
                    write_message(&mut writer, &Message::Upsert(known)).expect("upsert");
                    break;
                }
            }
        }
        answered
    });

    // The ARP request misses and is held until the mapping arrives; the echo request after it
    // finds the mapping.
    let ping = vpc
        .guest
        .sh(&format!("ping -c 1 -W 5 {}", remote.overlay_v4));
    let answered = answering.join().expect("answering thread");
    assert!(
        ping.is_ok(),
        "the first ping must get through once the mapping arrives: {ping:?}\n{}",
        vpc.dataplane_log()
    );
    assert!(
        answered
            .iter()
            .any(|k| k.overlay_ip == IpAddr::V4(remote.overlay_v4)),
        "miss asked for {answered:?}"
    );

    // Workers publish their counters every 20 ms and whenever they go idle: wait (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut snapshot = stats(&vpc);
    let settled = |s: &serde_json::Value| {
        s["total"]["held_released"].as_u64() >= Some(1)
            && s["total"]["egress_packets"].as_u64() >= Some(1)
    };
    while !settled(&snapshot) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        snapshot = stats(&vpc);
    }
    let total = &snapshot["total"];
    assert!(
        total["held_packets"].as_u64() >= Some(1),
        "the first ARP request was not held: {total}"
    );
    assert_eq!(
        total["held_released"], total["held_packets"],
        "every held frame was sent: {total}"
    );
    assert_eq!(
        total["drops"]["miss"], 0,
        "no missed frame was dropped: {total}"
    );
}
