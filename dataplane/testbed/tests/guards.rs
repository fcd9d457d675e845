//! Privileged tests of the namespace and process guards.

use std::path::Path;
use std::time::Duration;

use xvpc_testbed::{require_root, veth_pair, ChildGuard, Netns};

fn ns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn pid_alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie's state is 'Z'.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn netns_is_deleted_on_drop() {
    require_root();
    let ns = Netns::new("guard").expect("create namespace");
    let name = ns.name().to_string();
    assert!(name.starts_with("xvpc-guard-"), "{name}");
    assert!(ns_exists(&name));
    let lo = ns.sh("ip -o link show lo").expect("show lo");
    assert!(lo.contains("UP"), "lo should be up: {lo}");
    drop(ns);
    assert!(!ns_exists(&name), "{name} still exists after drop");
}

#[test]
fn netns_is_deleted_after_panic_in_test_body() {
    require_root();
    let (tx, rx) = std::sync::mpsc::channel();
    let res = std::panic::catch_unwind(move || {
        let ns = Netns::new("panic").expect("create namespace");
        tx.send(ns.name().to_string()).expect("send name");
        panic!("test body fails");
    });
    assert!(res.is_err());
    let name = rx.recv().expect("name");
    assert!(!ns_exists(&name), "{name} survived a panic");
}

#[test]
fn drop_kills_processes_left_in_the_namespace() {
    require_root();
    let ns = Netns::new("pids").expect("create namespace");
    // Started outside any guard: only the namespace's drop can stop it.
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", ns.name(), "sleep", "60"])
        .spawn()
        .expect("spawn sleep");
    // Wait until it is actually inside (ip netns exec has execed sleep).
    let mut seen = false;
    for _ in 0..200 {
        if ns.pids().expect("pids").contains(&(child.id() as i32)) {
            seen = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(seen, "sleep never showed up in the namespace");
    drop(ns);
    let status = child.wait().expect("wait");
    assert!(!status.success(), "sleep should have been killed: {status}");
}

#[test]
fn child_guard_terminates_on_drop_and_kill_hard_works() {
    require_root();
    let ns = Netns::new("child").expect("create namespace");
    let g = ns.spawn(&["sleep", "60"]).expect("spawn");
    let pid = g.pid();
    assert!(pid_alive(pid));
    drop(g);
    assert!(!pid_alive(pid), "pid {pid} alive after guard drop");

    let mut g = ns.spawn(&["sleep", "60"]).expect("spawn");
    assert_eq!(
        g.wait_timeout(Duration::from_millis(50)).expect("wait"),
        None
    );
    let st = g.kill_hard().expect("kill");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(9));

    let mut g = ChildGuard::new(
        std::process::Command::new("true")
            .spawn()
            .expect("spawn true"),
    );
    let st = g
        .wait_timeout(Duration::from_secs(10))
        .expect("wait")
        .expect("true exits");
    assert!(st.success());
}

#[test]
fn veth_pair_connects_two_namespaces() {
    require_root();
    let a = Netns::new("vetha").expect("ns a");
    let b = Netns::new("vethb").expect("ns b");
    veth_pair((&a, "va"), (&b, "vb")).expect("veth");
    a.set_mtu("va", 1600).expect("mtu");
    a.set_mac("va", "02:00:00:00:00:0a").expect("mac");
    assert_eq!(a.mac("va").expect("mac"), "02:00:00:00:00:0a");
    a.tx_offload_off("va").expect("ethtool");
    a.add_addr("va", "198.18.0.1/30").expect("addr");
    b.add_addr("vb", "198.18.0.2/30").expect("addr");
    a.add_addr("va", "2001:2::1/64").expect("addr6");
    b.add_addr("vb", "2001:2::2/64").expect("addr6");
    a.sh("ping -c 1 -W 2 198.18.0.2")
        .expect("ping v4 across the pair");
    a.sh("ping -c 1 -W 2 2001:2::2")
        .expect("ping v6 across the pair");
    // The pair lives only inside the namespaces.
    let host = xvpc_testbed::ip(&["-o", "link", "show"]).expect("host links");
    assert!(!host.contains(" va@") && !host.contains(" vb@"), "{host}");
    // A failing command reports its stderr.
    let err = a.sh("echo boom >&2; exit 3").expect_err("must fail");
    assert!(err.to_string().contains("boom"), "{err}");
    assert!(Netns::new("bad tag").is_err());
    assert!(veth_pair((&a, "this-name-is-too-long"), (&b, "x")).is_err());
}

#[test]
fn run_in_enters_the_namespace() {
    require_root();
    let ns = Netns::new("runin").expect("ns");
    let host_ino = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("host netns");
    let inside = ns.run_in(|| {
        std::fs::metadata("/proc/thread-self/ns/net")
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .expect("thread netns")
    });
    let want = std::fs::metadata(format!("/run/netns/{}", ns.name()))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .expect("ns handle");
    assert_eq!(inside, want);
    assert_ne!(inside, host_ino);
    // Inside, the thread sees only the namespace's interfaces: just lo.
    let dev = ns.run_in(|| std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev"));
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(
        ifaces.iter().map(|s| s.trim()).collect::<Vec<_>>(),
        vec!["lo"]
    );
}
