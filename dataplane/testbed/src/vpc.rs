//! The standard xvpc test topology: a guest, the dataplane, an L3 fabric router and remote
//! hosts whose Linux kernel `vxlan` devices stand for other xvpc hosts (the interop peer).
//!
//! ```text
//!  guest ns                dataplane ns                   fabric ns (router)         remote i ns
//!  g0 ──────────────── xg0 [xvpc] xf0 ───────────────── f0        r<i> ─────────── u0 + vx100 (VNI 100)
//!  198.18.10.2/24           198.18.0.2/24                198.18.0.1  198.18.<i+1>.1  198.18.<i+1>.2
//!  2001:2:0:10::2/64        2001:2::2/64                 2001:2::1   2001:2:0:a<i>::1 2001:2:0:a<i>::2
//!                                                                                     overlay 198.18.10.<3+i>
//! ```
//!
//! Only RFC 2544 / RFC 5180 benchmarking addresses are used.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{veth_pair, veth_pair_with_queues, ChildGuard, Netns, TestbedError};

/// The guest's MAC.
pub const GUEST_MAC: &str = "02:00:00:00:01:01";
/// The guest's overlay IPv4 address.
pub const GUEST_V4: &str = "198.18.10.2";
/// The guest's overlay IPv6 address.
pub const GUEST_V6: &str = "2001:2:0:10::2";
/// The virtual gateway.
pub const GATEWAY_V4: &str = "198.18.10.1";
/// The virtual gateway (IPv6).
pub const GATEWAY_V6: &str = "2001:2:0:10::1";
/// The gateway's MAC.
pub const GATEWAY_MAC: &str = "02:00:00:00:00:01";
/// Our underlay address.
pub const UNDERLAY_V4: &str = "198.18.0.2";
/// Our underlay address (IPv6).
pub const UNDERLAY_V6: &str = "2001:2::2";
/// The fabric router's MAC on our link (the next hop).
pub const ROUTER_MAC: &str = "02:00:00:00:0f:01";
/// Our fabric port's MAC.
pub const FABRIC_MAC: &str = "02:00:00:00:0f:02";
/// The VNI of the test network.
pub const VNI: u32 = 100;

/// Which underlay a remote host's VXLAN device uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Underlay {
    /// Outer IPv4.
    V4,
    /// Outer IPv6.
    V6,
    /// Outer IPv6 with zero UDP checksums both ways (RFC 6935: `udp6zerocsumtx` and
    /// `udp6zerocsumrx`).
    V6ZeroChecksum,
}

/// A remote host: a kernel VXLAN device and the remote guest behind it.
pub struct Remote {
    /// Its namespace.
    pub ns: Netns,
    /// Index (0-based).
    pub index: usize,
    /// The underlay family its VXLAN device uses.
    pub underlay: Underlay,
    /// Its underlay addresses.
    pub underlay_v4: Ipv4Addr,
    /// Its underlay addresses (IPv6).
    pub underlay_v6: Ipv6Addr,
    /// The remote guest's overlay addresses.
    pub overlay_v4: Ipv4Addr,
    /// The remote guest's overlay addresses (IPv6).
    pub overlay_v6: Ipv6Addr,
    /// The remote guest's MAC (the vxlan device's).
    pub mac: String,
}

impl Remote {
    /// The underlay address its VXLAN device sends from.
    pub fn underlay_ip(&self) -> IpAddr {
        match self.underlay {
            Underlay::V4 => IpAddr::V4(self.underlay_v4),
            Underlay::V6 | Underlay::V6ZeroChecksum => IpAddr::V6(self.underlay_v6),
        }
    }

    /// A `[[mappings]]` TOML entry per overlay address of this remote.
    pub fn mappings_toml(&self) -> String {
        [IpAddr::V4(self.overlay_v4), IpAddr::V6(self.overlay_v6)]
            .iter()
            .map(|ip| {
                format!(
                    "[[mappings]]\nvni = {VNI}\noverlay_ip = \"{ip}\"\nunderlay_ip = \"{}\"\noverlay_mac = \"{}\"\n",
                    self.underlay_ip(),
                    self.mac
                )
            })
            .collect()
    }

    /// Packets received by the remote's VXLAN device (decapsulated by the kernel).
    pub fn vxlan_rx_packets(&self) -> Result<u64, TestbedError> {
        let text = self
            .ns
            .sh("cat /sys/class/net/vx100/statistics/rx_packets")?;
        Ok(text.trim().parse().unwrap_or(0))
    }
}

/// `$XVPC_E2E_FAST_PATH` (`afxdp` or `xdp`): the tier the whole e2e suite runs the dataplane
/// with; unset means the config's default (`afxdp`).
pub fn fast_path_from_env() -> Option<&'static str> {
    match std::env::var("XVPC_E2E_FAST_PATH").ok()?.as_str() {
        "xdp" => Some("xdp"),
        "afxdp" => Some("afxdp"),
        other => panic!("XVPC_E2E_FAST_PATH must be afxdp or xdp, not {other:?}"),
    }
}

/// The whole topology. Dropping it deletes every namespace (and what runs inside).
pub struct Vpc {
    /// Remote hosts (declared first: dropped first).
    pub remotes: Vec<Remote>,
    /// The guest.
    pub guest: Netns,
    /// The dataplane's host.
    pub dataplane: Netns,
    /// The fabric router.
    pub fabric: Netns,
    /// A private directory for configs, sockets and captures (removed on drop).
    pub work: PathBuf,
}

impl Drop for Vpc {
    fn drop(&mut self) {
        // The pins go with their bpffs: the programs detach, then the namespaces are removed
        // by their own guards. Best effort.
        let _ = nix::mount::umount2(&self.pin_mount(), nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

impl Vpc {
    /// Build the topology with one remote host per entry of `remotes`.
    pub fn new(tag: &str, remotes: &[Underlay]) -> Result<Vpc, TestbedError> {
        Self::with_queues(tag, remotes, 1)
    }

    /// Like [`Vpc::new`], but the dataplane's two ports (and their peers) get `queues` RX
    /// and TX queues each, so a dataplane with `queues = [0, .., queues-1]` runs one worker
    /// per queue.
    pub fn with_queues(tag: &str, remotes: &[Underlay], queues: u32) -> Result<Vpc, TestbedError> {
        let guest = Netns::new(&format!("{tag}g"))?;
        let dataplane = Netns::new(&format!("{tag}d"))?;
        let fabric = Netns::new(&format!("{tag}f"))?;
        let work = std::env::temp_dir().join(format!("{}-work", dataplane.name()));
        std::fs::create_dir_all(&work).map_err(|source| TestbedError::Spawn {
            cmd: format!("mkdir {}", work.display()),
            source,
        })?;
        let mut vpc = Vpc {
            remotes: Vec::new(),
            guest,
            dataplane,
            fabric,
            work,
        };
        // A bpffs of the test's own, in this (the host's) mount namespace: the daemon's pins
        // outlive it there as on a real host, which `ip netns exec`'s private /sys would not
        // let them, and unmounting it on drop detaches whatever is left.
        let mount = vpc.pin_mount();
        std::fs::create_dir_all(&mount).map_err(|source| TestbedError::Spawn {
            cmd: format!("mkdir {}", mount.display()),
            source,
        })?;
        crate::run_checked(std::process::Command::new("mount").args([
            "-t",
            "bpf",
            "bpf",
            &mount.display().to_string(),
        ]))?;

        let queues = queues.max(1);
        veth_pair_with_queues((&vpc.guest, "g0"), (&vpc.dataplane, "xg0"), queues)?;
        veth_pair_with_queues((&vpc.dataplane, "xf0"), (&vpc.fabric, "f0"), queues)?;
        let (g, d, f) = (&vpc.guest, &vpc.dataplane, &vpc.fabric);
        g.set_mac("g0", GUEST_MAC)?;
        g.add_addr("g0", &format!("{GUEST_V4}/24"))?;
        g.add_addr("g0", &format!("{GUEST_V6}/64"))?;
        g.ip(&["route", "add", "default", "via", GATEWAY_V4])?;
        g.ip(&["-6", "route", "add", "default", "via", GATEWAY_V6])?;
        d.set_mac("xf0", FABRIC_MAC)?;
        d.add_addr("xf0", &format!("{UNDERLAY_V4}/24"))?;
        d.add_addr("xf0", &format!("{UNDERLAY_V6}/64"))?;
        d.ip(&["route", "add", "198.18.0.0/15", "via", "198.18.0.1"])?;
        d.ip(&["-6", "route", "add", "2001:2::/48", "via", "2001:2::1"])?;
        f.set_mac("f0", ROUTER_MAC)?;
        f.add_addr("f0", "198.18.0.1/24")?;
        f.add_addr("f0", "2001:2::1/64")?;
        f.sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")?;
        // veth leaves checksums to an offload that never happens on a forwarded copy; a real
        // NIC finishes them on the wire, so every sender here does it in software.
        g.tx_offload_off("g0")?;
        f.tx_offload_off("f0")?;
        if fast_path_from_env() == Some("xdp") {
            // XDP redirects into xf0 reach f0, and those into xg0 reach g0, only with NAPI
            // on the peer (docs/XDP.md).
            vpc.gro_for_xdp_redirects()?;
        }
        for (i, underlay) in remotes.iter().enumerate() {
            let remote = vpc.add_remote(tag, i, *underlay)?;
            vpc.remotes.push(remote);
        }
        for (ns, dev) in [
            (&vpc.guest, "g0"),
            (&vpc.dataplane, "xg0"),
            (&vpc.dataplane, "xf0"),
            (&vpc.fabric, "f0"),
        ] {
            ns.link_up(dev)?;
        }
        Ok(vpc)
    }

    /// GRO on the peers of both dataplane ports (f0, g0): veth delivers a frame an XDP
    /// program redirected into xf0 or xg0 only into a peer with NAPI (docs/XDP.md).
    pub fn gro_for_xdp_redirects(&self) -> Result<(), TestbedError> {
        self.fabric.sh("ethtool -K f0 gro on")?;
        self.guest.sh("ethtool -K g0 gro on")?;
        Ok(())
    }

    fn add_remote(&self, tag: &str, i: usize, underlay: Underlay) -> Result<Remote, TestbedError> {
        let ns = Netns::new(&format!("{tag}r{i}"))?;
        let router_port = format!("r{i}");
        veth_pair((&self.fabric, &router_port), (&ns, "u0"))?;
        let subnet = i + 1;
        let underlay_v4: Ipv4Addr = format!("198.18.{subnet}.2")
            .parse()
            .expect("literal address");
        let underlay_v6: Ipv6Addr = format!("2001:2:0:a{subnet}::2")
            .parse()
            .expect("literal address");
        self.fabric
            .add_addr(&router_port, &format!("198.18.{subnet}.1/24"))?;
        self.fabric
            .add_addr(&router_port, &format!("2001:2:0:a{subnet}::1/64"))?;
        self.fabric.tx_offload_off(&router_port)?;
        self.fabric.link_up(&router_port)?;
        ns.add_addr("u0", &format!("{underlay_v4}/24"))?;
        ns.add_addr("u0", &format!("{underlay_v6}/64"))?;
        ns.tx_offload_off("u0")?;
        ns.link_up("u0")?;
        ns.ip(&[
            "route",
            "add",
            "198.18.0.0/24",
            "via",
            &format!("198.18.{subnet}.1"),
        ])?;
        ns.ip(&[
            "-6",
            "route",
            "add",
            "2001:2::/64",
            "via",
            &format!("2001:2:0:a{subnet}::1"),
        ])?;
        let (local, remote, options) = match underlay {
            Underlay::V4 => (underlay_v4.to_string(), UNDERLAY_V4, ""),
            Underlay::V6 => (underlay_v6.to_string(), UNDERLAY_V6, ""),
            Underlay::V6ZeroChecksum => (
                underlay_v6.to_string(),
                UNDERLAY_V6,
                " udp6zerocsumtx udp6zerocsumrx",
            ),
        };
        ns.sh(&format!(
            "ip link add vx100 type vxlan id {VNI} local {local} remote {remote} dstport 4789 dev u0{options}"
        ))?;
        let mac = format!("02:00:00:00:02:{:02x}", 3 + i);
        let overlay_v4: Ipv4Addr = format!("198.18.10.{}", 3 + i)
            .parse()
            .expect("literal address");
        let overlay_v6: Ipv6Addr = format!("2001:2:0:10::{}", 3 + i)
            .parse()
            .expect("literal address");
        ns.set_mac("vx100", &mac)?;
        ns.add_addr("vx100", &format!("{overlay_v4}/24"))?;
        ns.add_addr("vx100", &format!("{overlay_v6}/64"))?;
        ns.tx_offload_off("vx100")?;
        // The remote host knows our guest from its own mappings: no ARP across the fabric.
        ns.add_neigh("vx100", GUEST_V4, GUEST_MAC)?;
        ns.add_neigh("vx100", GUEST_V6, GUEST_MAC)?;
        ns.link_up("vx100")?;
        Ok(Remote {
            ns,
            index: i,
            underlay,
            underlay_v4,
            underlay_v6,
            overlay_v4,
            overlay_v6,
            mac,
        })
    }

    /// A dataplane config for this topology (with `fast_path` from `$XVPC_E2E_FAST_PATH`
    /// unless `extra_dataplane` sets it). `mappings` are appended as TOML (use
    /// [`Remote::mappings_toml`] for static mappings, or nothing when an agent syncs).
    pub fn config_toml(&self, mappings: &str, extra_dataplane: &str) -> String {
        self.config_toml_with(mappings, "", extra_dataplane)
    }

    /// Like [`Vpc::config_toml`], with `extra_fabric` appended to the `[fabric]` table (e.g.
    /// `mtu = 1400`).
    pub fn config_toml_with(
        &self,
        mappings: &str,
        extra_fabric: &str,
        extra_dataplane: &str,
    ) -> String {
        let work = self.work.display();
        let fast_path = match fast_path_from_env() {
            Some(tier) if !extra_dataplane.contains("fast_path") => {
                format!("fast_path = \"{tier}\"\nfast_path_capacity = 4096\n")
            }
            _ => String::new(),
        };
        format!(
            r#"[guest]
interface = "xg0"
vni = {VNI}
mac = "{GUEST_MAC}"
ipv4 = ["{GUEST_V4}"]
ipv6 = ["{GUEST_V6}"]
mtu = 1500

[gateway]
mac = "{GATEWAY_MAC}"
ipv4 = "{GATEWAY_V4}"
ipv6 = "{GATEWAY_V6}"

[fabric]
interface = "xf0"
underlay_ipv4 = "{UNDERLAY_V4}"
underlay_ipv6 = "{UNDERLAY_V6}"
next_hop_mac = "{ROUTER_MAC}"
vxlan_port = 4789
{extra_fabric}

[dataplane]
queues = [0]
attach_mode = "driver"
control_socket = "{work}/control.sock"
stats_socket = "{work}/stats.sock"
pin_dir = "{work}/bpf/xvpc"
{fast_path}{extra_dataplane}

{mappings}"#
        )
    }

    /// A management namespace joined to the dataplane host by an out-of-band veth
    /// (`mg0` there, `dm0` on the host), `mgmt_ip/24` and `host_ip/24` on its two ends: where
    /// a mapping service or a metrics scraper lives, out of the guest's reach.
    pub fn add_management(
        &self,
        tag: &str,
        mgmt_ip: &str,
        host_ip: &str,
    ) -> Result<Netns, TestbedError> {
        let mgmt = Netns::new(tag)?;
        veth_pair((&mgmt, "mg0"), (&self.dataplane, "dm0"))?;
        mgmt.add_addr("mg0", &format!("{mgmt_ip}/24"))?;
        self.dataplane.add_addr("dm0", &format!("{host_ip}/24"))?;
        Ok(mgmt)
    }

    /// Where the test's bpffs is mounted.
    pub fn pin_mount(&self) -> PathBuf {
        self.work.join("bpf")
    }

    /// The daemon's `dataplane.pin_dir` (as written by [`Vpc::config_toml`]).
    pub fn pin_dir(&self) -> PathBuf {
        self.pin_mount().join("xvpc")
    }

    /// Path of the dataplane's control socket (as written by [`Vpc::config_toml`]).
    pub fn control_socket(&self) -> PathBuf {
        self.work.join("control.sock")
    }

    /// Path of the dataplane's stats socket.
    pub fn stats_socket(&self) -> PathBuf {
        self.work.join("stats.sock")
    }

    /// Write `config` and start `xvpc run` in the dataplane namespace; waits until its stats
    /// socket answers (up to 10 s).
    pub fn start_dataplane(&self, xvpc: &Path, config: &str) -> Result<ChildGuard, TestbedError> {
        self.start_dataplane_with_env(xvpc, config, &[])
    }

    /// Like [`Vpc::start_dataplane`], with `env` (`NAME=value` words) in the daemon's
    /// environment.
    pub fn start_dataplane_with_env(
        &self,
        xvpc: &Path,
        config: &str,
        env: &[&str],
    ) -> Result<ChildGuard, TestbedError> {
        let path = self.work.join("xvpc.toml");
        std::fs::write(&path, config).map_err(|source| TestbedError::Spawn {
            cmd: format!("write {}", path.display()),
            source,
        })?;
        let log = self.work.join("xvpc.log");
        let stdout = self.work.join("xvpc.out");
        let script = format!(
            "exec env {} {} run --config {} >{} 2>>{}",
            env.join(" "),
            xvpc.display(),
            path.display(),
            stdout.display(),
            log.display()
        );
        let mut child = self.dataplane.spawn(&["sh", "-c", &script])?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::os::unix::net::UnixStream::connect(self.stats_socket()).is_ok() {
                return Ok(child);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(TestbedError::Command {
                    cmd: script,
                    status,
                    stderr: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(TestbedError::Command {
            cmd: script,
            status: std::process::ExitStatus::default(),
            stderr: format!(
                "the stats socket did not appear within 10 s; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        })
    }

    /// Starts `xvpc run --takeover` with `config` in the dataplane namespace, its stdout to
    /// `xvpc-takeover.out` and its log appended to the daemon's; does not wait (the old
    /// daemon's stats socket answers until it hands over).
    pub fn start_takeover(&self, xvpc: &Path, config: &str) -> Result<ChildGuard, TestbedError> {
        let path = self.work.join("xvpc-takeover.toml");
        std::fs::write(&path, config).map_err(|source| TestbedError::Spawn {
            cmd: format!("write {}", path.display()),
            source,
        })?;
        let script = format!(
            "exec {} run --takeover --config {} >{} 2>>{}",
            xvpc.display(),
            path.display(),
            self.work.join("xvpc-takeover.out").display(),
            self.work.join("xvpc.log").display()
        );
        self.dataplane.spawn(&["sh", "-c", &script])
    }

    /// What `xvpc run --takeover` printed on stdout (its final counters, once stopped).
    pub fn takeover_output(&self) -> String {
        std::fs::read_to_string(self.work.join("xvpc-takeover.out")).unwrap_or_default()
    }

    /// What `xvpc run` printed on stdout (its final counters, once it has stopped).
    pub fn dataplane_output(&self) -> String {
        std::fs::read_to_string(self.work.join("xvpc.out")).unwrap_or_default()
    }

    /// The dataplane's log so far (for failure messages).
    pub fn dataplane_log(&self) -> String {
        std::fs::read_to_string(self.work.join("xvpc.log")).unwrap_or_default()
    }
}

/// A binary built by this workspace (`target/<profile>/<name>`), found from the running test
/// executable (`target/<profile>/deps/<test>`). `cargo test --workspace` builds every binary.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "binary `{name}` not found next to {}: build it first (`cargo build --workspace`, or run the tests with `cargo test --workspace`)",
        exe.display()
    );
}
