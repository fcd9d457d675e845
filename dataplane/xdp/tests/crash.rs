//! Crash test: a process that attached `xvpc_guest` is SIGKILLed; the kernel must detach the
//! program (bpf_link), so no stale program stays on the guest port.
//!
//! The holder is this same test binary, re-invoked inside the namespace with
//! `XVPC_XDP_HOLD=<ifname>`: it attaches, says so on stdout, and waits to be killed.

use std::io::{BufRead, BufReader, Write};
use std::time::{Duration, Instant};

use xvpc_testbed::{require_root, veth_pair, Netns};
use xvpc_xdp::{AttachMode, GuestSteering};

const HOLD_ENV: &str = "XVPC_XDP_HOLD";
const READY: &str = "XVPC-XDP-HOLDER-ATTACHED";
const TEST_NAME: &str = "guest_program_is_detached_when_its_process_is_killed";

/// The holder side: attach and wait (bounded) to be killed.
fn hold(ifname: &str) {
    let g = GuestSteering::attach(ifname, AttachMode::Driver, None).expect("holder attaches");
    // Straight to fd 1: libtest may capture `println!`.
    let mut out = std::io::stdout();
    writeln!(out, "\n{READY} {}", g.mode()).expect("write to the test");
    out.flush().expect("flush to the test");
    // Bounded: if nobody kills us, exit after a minute (the test then fails on the
    // missing SIGKILL status).
    std::thread::sleep(Duration::from_secs(60));
}

fn xdp_attached(ns: &Netns, dev: &str) -> bool {
    let out = ns
        .ip(&["-d", "link", "show", "dev", dev])
        .expect("ip link show");
    out.contains("prog/xdp") || out.contains(" xdp")
}

#[test]
fn guest_program_is_detached_when_its_process_is_killed() {
    if let Ok(ifname) = std::env::var(HOLD_ENV) {
        hold(&ifname);
        return;
    }
    require_root();
    let ns = Netns::new("crash").expect("ns");
    veth_pair((&ns, "cr0"), (&ns, "cr1")).expect("veth");
    assert!(!xdp_attached(&ns, "cr0"));

    let exe = std::env::current_exe().expect("test binary path");
    let exe = exe.to_str().expect("utf-8 path");
    let env = format!("{HOLD_ENV}=cr0");
    let mut holder = ns
        .spawn_piped(&[
            "env",
            &env,
            exe,
            "--exact",
            TEST_NAME,
            "--nocapture",
            "--test-threads=1",
        ])
        .expect("spawn holder");
    let stdout = holder.child_mut().stdout.take().expect("piped stdout");
    let mut ready = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("holder stdout");
        if line.contains(READY) {
            ready = true;
            break;
        }
    }
    assert!(
        ready,
        "holder exited without attaching: {:?}",
        holder.wait()
    );
    assert!(
        xdp_attached(&ns, "cr0"),
        "holder said attached but no program on cr0"
    );

    let status = holder.kill_hard().expect("SIGKILL holder");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "holder ended otherwise: {status}");

    // The link is released when the dead process's files are closed; allow the kernel a
    // moment (bounded) rather than racing it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while xdp_attached(&ns, "cr0") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let link = ns.ip(&["-d", "link", "show", "dev", "cr0"]).expect("link");
    assert!(
        !xdp_attached(&ns, "cr0"),
        "XDP program survived its process: {link}"
    );
}
