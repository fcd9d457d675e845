//! Named network namespaces (`ip netns`) that delete themselves, and veth plumbing.

use std::fs::File;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::sched::{setns, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{cmdline, run_checked, ChildGuard, TestbedError};

/// Makes namespace names unique within this process.
static NEXT_NS: AtomicU32 = AtomicU32::new(0);

/// The longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

fn check_ifname(name: &str) -> Result<(), TestbedError> {
    if name.is_empty() || name.len() > IFNAME_MAX {
        return Err(TestbedError::BadName {
            name: name.to_string(),
            why: "interface names are 1 to 15 bytes",
        });
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(TestbedError::BadName {
            name: name.to_string(),
            why: "interface names use [A-Za-z0-9._-]",
        });
    }
    Ok(())
}

/// A network namespace `xvpc-<tag>-<pid>-<n>` with `lo` up, deleted on drop.
///
/// Dropping it first SIGKILLs every process still inside (so nothing keeps the namespace,
/// its veths or its XDP programs alive), then runs `ip netns del`.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up.
    pub fn new(tag: &str) -> Result<Netns, TestbedError> {
        if tag.is_empty()
            || !tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(TestbedError::BadName {
                name: tag.to_string(),
                why: "namespace tags are non-empty and use [A-Za-z0-9_-]",
            });
        }
        let n = NEXT_NS.fetch_add(1, Ordering::Relaxed);
        let name = format!("xvpc-{tag}-{}-{n}", std::process::id());
        crate::ip(&["netns", "add", &name])?;
        // From here on, Drop removes the namespace even if bringing lo up fails.
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        c
    }

    /// Runs `ip netns exec <ns> args...` and returns its output whatever its exit status.
    pub fn exec(&self, args: &[&str]) -> Result<Output, TestbedError> {
        let mut c = self.command(args);
        c.stdin(Stdio::null());
        c.output().map_err(|source| TestbedError::Spawn {
            cmd: cmdline(&c),
            source,
        })
    }

    /// Runs `sh -c script` in the namespace; a non-zero exit is an error carrying stderr.
    /// Returns stdout.
    pub fn sh(&self, script: &str) -> Result<String, TestbedError> {
        run_checked(self.command(&["sh", "-c", script]).stdin(Stdio::null()))
    }

    /// Runs `ip -n <ns> args...`, checking its exit status. Returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String, TestbedError> {
        run_checked(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// Starts `args` inside the namespace (stdin null, stdout/stderr inherited) under a
    /// [`ChildGuard`]. `ip netns exec` execs the program, so the guard's pid is the program's.
    pub fn spawn(&self, args: &[&str]) -> Result<ChildGuard, TestbedError> {
        let mut c = self.command(args);
        c.stdin(Stdio::null());
        self.spawn_command(c)
    }

    /// Like [`Netns::spawn`], but with stdout and stderr piped (take them with
    /// [`ChildGuard::child_mut`]).
    pub fn spawn_piped(&self, args: &[&str]) -> Result<ChildGuard, TestbedError> {
        let mut c = self.command(args);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.spawn_command(c)
    }

    fn spawn_command(&self, mut c: Command) -> Result<ChildGuard, TestbedError> {
        let child = c.spawn().map_err(|source| TestbedError::Spawn {
            cmd: cmdline(&c),
            source,
        })?;
        Ok(ChildGuard::new(child))
    }

    /// Runs `f` on a fresh thread that has entered this namespace with
    /// `setns(CLONE_NEWNET)`, so sockets (AF_XDP included) and XDP attaches made in `f` live
    /// in the namespace. A panic in `f` is propagated.
    ///
    /// # Panics
    /// If the namespace cannot be entered (see [`Netns::try_run_in`] for the fallible form).
    pub fn run_in<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        match self.try_run_in(f) {
            Ok(r) => r,
            Err(e) => panic!("run_in({}): {e}", self.name),
        }
    }

    /// Like [`Netns::run_in`], but failing to enter the namespace is an error.
    pub fn try_run_in<F, R>(&self, f: F) -> Result<R, TestbedError>
    where
        F: FnOnce() -> R + Send,
        R: Send,
    {
        let path = format!("/run/netns/{}", self.name);
        let handle = File::open(&path).map_err(|source| TestbedError::OpenNetns {
            path: path.clone(),
            source,
        })?;
        std::thread::scope(|s| {
            let t = s.spawn(move || {
                setns(&handle, CloneFlags::CLONE_NEWNET).map_err(|source| TestbedError::Setns {
                    ns: self.name.clone(),
                    source,
                })?;
                Ok(f())
            });
            match t.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Pids of the processes inside the namespace (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<i32>, TestbedError> {
        let out = crate::ip(&["netns", "pids", &self.name])?;
        Ok(out
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
            .collect())
    }

    /// Adds an address in CIDR form (`198.18.0.1/24`, `2001:2::1/64`) to `dev`. IPv6
    /// addresses skip duplicate address detection so they are usable at once.
    pub fn add_addr(&self, dev: &str, cidr: &str) -> Result<(), TestbedError> {
        check_ifname(dev)?;
        if cidr.contains(':') {
            self.ip(&["addr", "add", cidr, "dev", dev, "nodad"])?;
        } else {
            self.ip(&["addr", "add", cidr, "dev", dev])?;
        }
        Ok(())
    }

    /// Sets the MTU of `dev`.
    pub fn set_mtu(&self, dev: &str, mtu: u32) -> Result<(), TestbedError> {
        check_ifname(dev)?;
        self.ip(&["link", "set", "dev", dev, "mtu", &mtu.to_string()])?;
        Ok(())
    }

    /// Sets the MAC address of `dev` (`02:00:00:00:00:01`).
    pub fn set_mac(&self, dev: &str, mac: &str) -> Result<(), TestbedError> {
        check_ifname(dev)?;
        self.ip(&["link", "set", "dev", dev, "address", mac])?;
        Ok(())
    }

    /// Brings `dev` up.
    pub fn link_up(&self, dev: &str) -> Result<(), TestbedError> {
        check_ifname(dev)?;
        self.ip(&["link", "set", "dev", dev, "up"])?;
        Ok(())
    }

    /// The MAC address of `dev`, as `ip` prints it.
    pub fn mac(&self, dev: &str) -> Result<String, TestbedError> {
        check_ifname(dev)?;
        let s = self.sh(&format!("cat /sys/class/net/{dev}/address"))?;
        Ok(s.trim().to_string())
    }

    /// The ifindex of `dev` inside the namespace.
    pub fn ifindex(&self, dev: &str) -> Result<u32, TestbedError> {
        check_ifname(dev)?;
        let s = self.sh(&format!("cat /sys/class/net/{dev}/ifindex"))?;
        s.trim().parse().map_err(|_| TestbedError::BadName {
            name: dev.to_string(),
            why: "ifindex in sysfs is not a number",
        })
    }

    /// Turns off TX checksum offload on `dev` (`ethtool -K <dev> tx off`): otherwise veth
    /// forwards UDP with partial checksums, which the receiver counts as errors.
    pub fn tx_offload_off(&self, dev: &str) -> Result<(), TestbedError> {
        check_ifname(dev)?;
        self.sh(&format!("ethtool -K {dev} tx off >/dev/null"))?;
        Ok(())
    }

    /// Adds a permanent neighbour entry so no ARP/ND is needed to reach `addr`.
    pub fn add_neigh(&self, dev: &str, addr: &str, mac: &str) -> Result<(), TestbedError> {
        check_ifname(dev)?;
        self.ip(&[
            "neigh",
            "replace",
            addr,
            "lladdr",
            mac,
            "dev",
            dev,
            "nud",
            "permanent",
        ])?;
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what still runs inside; otherwise the namespace (and its veths, XDP programs
        // and AF_XDP sockets) would outlive its name.
        match self.pids() {
            Ok(pids) => {
                for pid in pids {
                    if pid != std::process::id() as i32 {
                        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                }
            }
            Err(e) => eprintln!("xvpc-testbed: listing pids of {}: {e}", self.name),
        }
        if let Err(e) = crate::ip(&["netns", "del", &self.name]) {
            eprintln!("xvpc-testbed: deleting {}: {e}", self.name);
        }
    }
}

/// Creates a veth pair with end `a.1` in namespace `a.0` and end `b.1` in `b.0`, and brings
/// both up. The pair is created directly inside the namespaces, so names never clash with
/// the host's or another test's interfaces.
pub fn veth_pair(a: (&Netns, &str), b: (&Netns, &str)) -> Result<(), TestbedError> {
    veth_pair_with_queues(a, b, 1)
}

/// [`veth_pair`] with `queues` RX and TX queues on both ends (one AF_XDP queue pair and one
/// dataplane worker per queue).
pub fn veth_pair_with_queues(
    a: (&Netns, &str),
    b: (&Netns, &str),
    queues: u32,
) -> Result<(), TestbedError> {
    check_ifname(a.1)?;
    check_ifname(b.1)?;
    let q = queues.to_string();
    let per_end = ["numtxqueues", &q, "numrxqueues", &q];
    let mut args = vec!["link", "add", a.1];
    args.extend(per_end);
    args.extend(["type", "veth", "peer", "name", b.1, "netns", b.0.name()]);
    args.extend(per_end);
    a.0.ip(&args)?;
    a.0.link_up(a.1)?;
    b.0.link_up(b.1)?;
    Ok(())
}
