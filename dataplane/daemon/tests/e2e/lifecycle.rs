//! Start, stop and crash: frame accounting balances, and the XDP programs never outlive the
//! daemon (they are attached through bpf_links, released with the process's descriptors).

use xvpc_testbed::require_root;
use xvpc_testbed::vpc::{Underlay, Vpc};

use crate::common::*;

fn xdp_attached(vpc: &Vpc) -> (bool, bool) {
    (
        has_xdp(&vpc.dataplane, "xg0"),
        has_xdp(&vpc.dataplane, "xf0"),
    )
}

fn ping_remote(vpc: &Vpc) {
    let remote = &vpc.remotes[0];
    for target in [remote.overlay_v4.to_string(), remote.overlay_v6.to_string()] {
        if let Err(out) = ping(&vpc.guest, &target, 2) {
            panic!("guest → {target}: {out}\nlog:\n{}", vpc.dataplane_log());
        }
    }
}

#[test]
fn clean_stop_balances_frames_and_detaches_xdp() {
    require_root();
    let vpc = Vpc::new("lif", &[Underlay::V4]).expect("topology");
    assert_eq!(xdp_attached(&vpc), (false, false), "no XDP before xvpc");
    let mut daemon = start_default(&vpc);
    assert_eq!(xdp_attached(&vpc), (true, true), "xvpc attached both ports");
    ping_remote(&vpc);

    // Idle after traffic: every frame is back in a fill ring or on the free list.
    let frames = wait_until("frames to settle (in_app 0, in_tx [0,0])", || {
        let snapshot = stats(&vpc);
        let frames = snapshot["workers"][0]["frames"].clone();
        (frames["in_app"] == 0 && frames["in_tx"] == serde_json::json!([0, 0])).then_some(frames)
    });
    assert_eq!(frames["balanced"], true, "running accounting: {frames}");
    // The kernel's own drop counters of both sockets are reported (and a ping loses nothing).
    let snapshot = stats(&vpc);
    for port in ["guest", "fabric"] {
        let kernel = &snapshot["workers"][0]["kernel"][port];
        assert_eq!(kernel["rx_ring_full"], 0, "{port} socket: {kernel}");
        assert_eq!(kernel["rx_invalid_descs"], 0, "{port} socket: {kernel}");
    }

    let before = totals(&vpc);
    let last = stop(&vpc, &mut daemon);
    assert_clean_exit_summary(&last);
    assert!(
        counter(&last, "egress_packets") >= counter(&before, "egress_packets")
            && counter(&last, "egress_packets") >= 4,
        "the final counters include the run's traffic: {last}"
    );
    for reason in ["tx_ring_full", "invalid_descriptor", "no_headroom"] {
        assert_eq!(counter(&last, reason), 0, "{reason}: {last}");
    }
    assert_eq!(xdp_attached(&vpc), (false, false), "XDP detached at exit");
    assert!(
        !vpc.stats_socket().exists() && !vpc.control_socket().exists(),
        "sockets removed at exit"
    );
    let log = vpc.dataplane_log();
    assert!(log.contains("XDP programs detached"), "log:\n{log}");
}

#[test]
fn kill_9_leaves_no_xdp_behind_and_a_restart_works() {
    require_root();
    let vpc = Vpc::new("crs", &[Underlay::V4]).expect("topology");
    let mut daemon = start_default(&vpc);
    ping_remote(&vpc);
    let status = daemon.kill_hard().expect("kill -9 xvpc");
    assert!(!status.success(), "xvpc was killed: {status}");
    // The kernel releases the bpf_links with the dead process's descriptors (possibly a
    // moment later, from a workqueue).
    wait_until("the XDP programs to go away after kill -9", || {
        (xdp_attached(&vpc) == (false, false)).then_some(())
    });
    // A restart attaches again despite the stale socket files and carries traffic.
    let mut daemon = start_default(&vpc);
    assert_eq!(xdp_attached(&vpc), (true, true), "xvpc attached again");
    ping_remote(&vpc);
    let last = stop(&vpc, &mut daemon);
    assert_clean_exit_summary(&last);
}

/// The exit summary: every frame accounted for, and the kernel dropped nothing at a full RX
/// ring of either socket.
fn assert_clean_exit_summary(last: &serde_json::Value) {
    assert_eq!(last["frames_balanced"], true, "final accounting: {last}");
    assert_eq!(
        last["kernel_rx_ring_full"],
        serde_json::json!({"guest": 0, "fabric": 0}),
        "final kernel drops: {last}"
    );
}
