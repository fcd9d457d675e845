//! A real etcd server (Debian's `etcd-server`, `/usr/bin/etcd`) for tests: random ports, a
//! private data directory, killed by pid on drop. Optionally inside a network namespace (the
//! management namespace of a deployment). Keys are written with `etcdctl` (API v3), so the
//! tests drive etcd exactly as an operator would.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{cmdline, run_checked, ChildGuard, Netns, TestbedError};

/// The etcd server binary.
pub const ETCD: &str = "/usr/bin/etcd";
/// The etcd client binary.
pub const ETCDCTL: &str = "/usr/bin/etcdctl";
/// Operations per transaction in [`Etcd::put_many`] (the server is started with
/// `--max-txn-ops` above this).
const TXN_OPS: usize = 5000;
/// How long [`Etcd::start`] waits for the server to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> Result<u16, TestbedError> {
    let spawn_err = |source| TestbedError::Spawn {
        cmd: "bind 127.0.0.1:0 (pick a free port)".into(),
        source,
    };
    let l = TcpListener::bind("127.0.0.1:0").map_err(spawn_err)?;
    Ok(l.local_addr().map_err(spawn_err)?.port())
}

/// A running (or stopped) etcd member. Dropping it kills the server and removes its data.
#[derive(Debug)]
pub struct Etcd {
    child: Option<ChildGuard>,
    netns: Option<String>,
    ip: IpAddr,
    /// The client port.
    pub client_port: u16,
    peer_port: u16,
    dir: PathBuf,
}

impl Etcd {
    /// Starts etcd on 127.0.0.1 in the current network namespace.
    pub fn start() -> Result<Etcd, TestbedError> {
        Self::launch(None, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Starts etcd inside `ns`, listening for clients on `ip` (an address of that namespace)
    /// only.
    pub fn start_in(ns: &Netns, ip: IpAddr) -> Result<Etcd, TestbedError> {
        Self::launch(Some(ns.name().to_string()), ip)
    }

    fn launch(netns: Option<String>, ip: IpAddr) -> Result<Etcd, TestbedError> {
        let n = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("xvpc-etcd-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| TestbedError::Spawn {
            cmd: format!("mkdir {}", dir.display()),
            source,
        })?;
        let mut etcd = Etcd {
            child: None,
            netns,
            ip,
            client_port: free_port()?,
            peer_port: free_port()?,
            dir,
        };
        etcd.start_again()?;
        Ok(etcd)
    }

    fn url(&self, port: u16) -> String {
        match self.ip {
            IpAddr::V4(a) => format!("http://{a}:{port}"),
            IpAddr::V6(a) => format!("http://[{a}]:{port}"),
        }
    }

    /// The client URL (`http://ip:port`).
    pub fn endpoint(&self) -> String {
        self.url(self.client_port)
    }

    /// The client address (for reachability checks).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The data directory (kept across [`Etcd::kill`] / [`Etcd::start_again`]).
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }

    fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    /// Starts the server again on the same ports and data directory (after
    /// [`Etcd::kill`]); waits until it answers. A no-op if it is running.
    pub fn start_again(&mut self) -> Result<(), TestbedError> {
        if self.child.is_some() {
            return Ok(());
        }
        let client = self.endpoint();
        let peer = self.url(self.peer_port);
        let log_path = self.dir.join("etcd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| TestbedError::Spawn {
                cmd: format!("open {}", log_path.display()),
                source,
            })?;
        let mut c = self.command(ETCD);
        c.args(["--name", "xvpc-test", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("xvpc-test={peer}")])
            .args(["--max-txn-ops", "10000", "--max-request-bytes", "10485760"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = c.spawn().map_err(|source| TestbedError::Spawn {
            cmd: format!("{} (install the Debian package etcd-server)", cmdline(&c)),
            source,
        })?;
        self.child = Some(ChildGuard::new(child));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let health = self.etcdctl(&["endpoint", "health"]);
            if health.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(TestbedError::Command {
                        cmd: format!("{ETCD} on {client}"),
                        status,
                        stderr: self.log(),
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(TestbedError::Command {
                    cmd: format!("{ETCDCTL} endpoint health ({client})"),
                    status: std::process::ExitStatus::default(),
                    stderr: format!(
                        "etcd did not answer within {READY_TIMEOUT:?}: {health:?}\n{}",
                        self.log()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the server again on the same data directory but another client port (after
    /// [`Etcd::kill`]): clients configured with the old endpoint cannot reach it until it is
    /// started on the old port again.
    pub fn start_again_on(&mut self, client_port: u16) -> Result<(), TestbedError> {
        self.kill()?;
        self.client_port = client_port;
        self.start_again()
    }

    /// SIGKILLs the server (a crash) and reaps it; the data directory stays.
    pub fn kill(&mut self) -> Result<(), TestbedError> {
        if let Some(mut child) = self.child.take() {
            child.kill_hard()?;
        }
        Ok(())
    }

    /// Runs `etcdctl --endpoints <ours> args...` (API v3) in etcd's namespace; returns stdout.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String, TestbedError> {
        let mut c = self.command(ETCDCTL);
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .args(["--dial-timeout=2s", "--command-timeout=10s"])
            .args(args)
            .stdin(Stdio::null());
        run_checked(&mut c)
    }

    /// `etcdctl put key value`.
    pub fn put(&self, key: &str, value: &str) -> Result<(), TestbedError> {
        self.etcdctl(&["put", "--", key, value]).map(drop)
    }

    /// `etcdctl del key`.
    pub fn delete(&self, key: &str) -> Result<(), TestbedError> {
        self.etcdctl(&["del", "--", key]).map(drop)
    }

    /// Puts many keys, [`TXN_OPS`] per transaction (`etcdctl txn` fed on stdin).
    pub fn put_many(&self, kvs: &[(String, String)]) -> Result<(), TestbedError> {
        for chunk in kvs.chunks(TXN_OPS) {
            // No compares (empty line), the puts, then empty success/failure terminators.
            let mut script = String::from("\n");
            for (k, v) in chunk {
                script.push_str(&format!("put {k} {}\n", go_quote(v)));
            }
            script.push_str("\n\n");
            let mut c = self.command(ETCDCTL);
            c.env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", self.endpoint()))
                .args(["--dial-timeout=2s", "--command-timeout=30s"])
                .args(["txn", "--interactive=false"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let line = cmdline(&c);
            let spawn_err = |source| TestbedError::Spawn {
                cmd: line.clone(),
                source,
            };
            let mut child = c.spawn().map_err(spawn_err)?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(script.as_bytes()).map_err(spawn_err)?;
            }
            let out = child.wait_with_output().map_err(spawn_err)?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() || !stdout.starts_with("SUCCESS") {
                return Err(TestbedError::Command {
                    cmd: line,
                    status: out.status,
                    stderr: format!("{}{stdout}", String::from_utf8_lossy(&out.stderr)),
                });
            }
        }
        Ok(())
    }
}

/// Quotes `s` as a Go string literal (what `etcdctl txn` unquotes with `%q`).
fn go_quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('"');
    for ch in s.chars() {
        match ch {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("xvpc-testbed: stopping etcd: {e}");
        }
        // Best effort: a leftover temp dir is harmless.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
