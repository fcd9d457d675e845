//! Config errors fail fast with a message naming the key: `xvpc check-config` on bad files,
//! and `xvpc run` when an interface does not exist.

use std::path::Path;
use std::process::{Command, Output};

use xvpc_testbed::{require_root, Netns};

use crate::common::*;

/// A valid config for interfaces `xg0` / `xf0`; `extra_guest` and `extra_fabric` are
/// appended to those tables.
fn config(extra_guest: &str, extra_fabric: &str) -> String {
    format!(
        r#"[guest]
interface = "xg0"
vni = 100
mac = "02:00:00:00:01:01"
ipv4 = ["198.18.10.2"]
{extra_guest}

[gateway]
mac = "02:00:00:00:00:01"
ipv4 = "198.18.10.1"

[fabric]
interface = "xf0"
underlay_ipv4 = "198.18.0.2"
next_hop_mac = "02:00:00:00:0f:01"
{extra_fabric}
"#
    )
}

fn check_config(path: &Path) -> Output {
    Command::new(xvpc())
        .arg("check-config")
        .arg(path)
        .output()
        .expect("running xvpc check-config")
}

#[test]
fn check_config_names_the_bad_key() {
    // check-config needs no privileges.
    let dir = std::env::temp_dir().join(format!("xvpc-e2e-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = dir.join("good.toml");
    std::fs::write(&good, config("", "")).expect("write config");
    let out = check_config(&good);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("config OK"),
        "a valid config passes: {out:?}"
    );

    let cases: [(&str, String, &[&str]); 6] = [
        (
            "vni",
            config("", "").replace("vni = 100", "vni = 16777216"),
            &["guest.vni", "24 bits"],
        ),
        (
            "unknown key",
            config("bogus = 1", ""),
            &["bogus", "unknown field"],
        ),
        (
            "bad MAC",
            config("", "").replace("\"02:00:00:00:01:01\"", "\"zz\""),
            &["mac", "invalid MAC address"],
        ),
        (
            "small MTU",
            config("", "mtu = 1000"),
            &["fabric.mtu", "1000"],
        ),
        (
            "no next hop",
            config("", "").replace("next_hop_mac = \"02:00:00:00:0f:01\"", ""),
            &["fabric.next_hop_mac"],
        ),
        (
            "same ports",
            config("", "").replace("interface = \"xf0\"", "interface = \"xg0\""),
            &["fabric.interface"],
        ),
    ];
    for (what, text, needles) in cases {
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).expect("write config");
        let out = check_config(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{what}: check-config must fail: {out:?}"
        );
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{what}: the error names {needle:?}:\n{stderr}"
            );
        }
    }
    let out = check_config(&dir.join("missing.toml"));
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("missing.toml"),
        "a missing file is named: {out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_with_a_missing_interface_fails_clearly() {
    require_root();
    // A namespace with no xg0/xf0 at all.
    let ns = Netns::new("cfg").expect("namespace");
    let dir = std::env::temp_dir().join(format!("{}-work", ns.name()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("xvpc.toml");
    let sockets = format!(
        "\n[dataplane]\ncontrol_socket = \"{0}/control.sock\"\nstats_socket = \"{0}/stats.sock\"\n",
        dir.display()
    );
    std::fs::write(&path, config("", "") + &sockets).expect("write config");
    let xvpc = xvpc().display().to_string();
    let path_text = path.display().to_string();
    // `timeout` bounds it should it ever start running instead of failing.
    let out = ns
        .exec(&["timeout", "20", &xvpc, "run", "--config", &path_text])
        .expect("running xvpc run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        out.status.code(),
        Some(1),
        "xvpc run fails (exit 1): {stderr}"
    );
    assert!(
        stderr.contains("guest.interface") && stderr.contains("xg0 does not exist"),
        "the error names the key and the interface:\n{stderr}"
    );
}
