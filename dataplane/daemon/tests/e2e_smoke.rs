//! End-to-end smoke test: the guest and a remote guest behind a Linux kernel VXLAN device
//! reach each other through xvpc over a routed fabric, on IPv4 and IPv6 underlays.

use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{workspace_bin, Underlay, Vpc};

#[test]
fn guest_and_remote_guests_ping_both_ways() {
    require_root();
    let vpc = Vpc::new("smk", &[Underlay::V4, Underlay::V6]).expect("topology");
    let mappings: String = vpc.remotes.iter().map(|r| r.mappings_toml()).collect();
    let config = vpc.config_toml(&mappings, "");
    let _daemon = vpc
        .start_dataplane(&workspace_bin("xvpc"), &config)
        .expect("xvpc starts");
    for remote in &vpc.remotes {
        for target in [remote.overlay_v4.to_string(), remote.overlay_v6.to_string()] {
            let out = vpc.guest.sh(&format!("ping -c 2 -i 0.2 -W 2 {target}"));
            assert!(
                out.is_ok(),
                "guest → {target} over {:?} underlay: {out:?}\n{}",
                remote.underlay,
                vpc.dataplane_log()
            );
        }
        let out = remote.ns.sh("ping -c 2 -i 0.2 -W 2 198.18.10.2");
        assert!(out.is_ok(), "remote {} → guest: {out:?}", remote.index);
    }
}
