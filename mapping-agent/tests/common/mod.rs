//! Test fixtures: a real etcd process on loopback, a dataplane-side control listener, and
//! helpers to build mappings.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use etcd_client::{Client, Txn, TxnOp};
use xvpc_agent::config::{Config, SourceConfig};
use xvpc_agent::entry::{etcd_key, etcd_value, UnderlayFamily};
use xvpc_control::{handshake, read_message, write_message, Message, Role, SyncAssembler};
use xvpc_model::{MacAddr, Mapping, MappingKey, Vni};

/// Upper bound for waiting on anything (a hang guard, not a performance assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub fn free_port() -> u16 {
    xvpc_testbed::etcd::free_port().expect("a free port on 127.0.0.1")
}

/// An etcd server on loopback with a temp data dir, killed by pid on drop: the testbed's
/// guard, with the panicking calls these tests want.
pub struct Etcd {
    inner: xvpc_testbed::etcd::Etcd,
    pub port: u16,
}

impl Etcd {
    pub fn start() -> Etcd {
        let inner = xvpc_testbed::etcd::Etcd::start()
            .expect("start /usr/bin/etcd (Debian package etcd-server)");
        let port = inner.client_port;
        Etcd { inner, port }
    }

    pub fn endpoint(&self) -> String {
        self.inner.endpoint()
    }

    /// Kills the server (the data dir stays).
    pub fn stop(&mut self) {
        self.inner.kill().expect("kill etcd");
    }

    /// Starts it again on the same ports and data dir.
    pub fn restart(&mut self) {
        self.stop();
        self.inner.start_again().expect("restart etcd");
    }

    /// Starts it again on the same data dir but another client port, which an agent
    /// configured with the old endpoint cannot reach: the agent stays disconnected while the
    /// test changes things. `restart_on(old)` brings it back.
    pub fn restart_on(&mut self, port: u16) {
        self.inner
            .start_again_on(port)
            .expect("restart etcd on another port");
        self.port = port;
    }

    pub fn client(&self, rt: &tokio::runtime::Runtime) -> Client {
        let ep = self.endpoint();
        rt.block_on(async move { Client::connect([ep], None).await })
            .expect("connect to test etcd")
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

pub fn vni(v: u32) -> Vni {
    Vni::new(v).expect("test VNI")
}

/// Mapping number `i` (all inside 198.18.0.0/15; MACs are locally administered unicast).
pub fn mapping(i: u32) -> Mapping {
    Mapping {
        vni: vni(100 + i % 3),
        overlay_ip: IpAddr::V4(Ipv4Addr::from(0xC612_0000 + i)),
        underlay_ip: IpAddr::V4(Ipv4Addr::from(0xC613_0000 + (i % 1000))),
        overlay_mac: MacAddr([0x02, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1]),
    }
}

pub fn put(rt: &tokio::runtime::Runtime, c: &mut Client, prefix: &str, m: &Mapping) -> i64 {
    let r = rt
        .block_on(c.put(etcd_key(prefix, &m.key()), etcd_value(m), None))
        .expect("etcd put");
    r.header().expect("header").revision()
}

pub fn put_raw(rt: &tokio::runtime::Runtime, c: &mut Client, key: &str, value: &str) {
    rt.block_on(c.put(key, value, None)).expect("etcd put");
}

pub fn delete(rt: &tokio::runtime::Runtime, c: &mut Client, prefix: &str, k: &MappingKey) {
    rt.block_on(c.delete(etcd_key(prefix, k), None))
        .expect("etcd delete");
}

/// Puts many mappings with large transactions.
pub fn put_many(rt: &tokio::runtime::Runtime, c: &mut Client, prefix: &str, ms: &[Mapping]) {
    for chunk in ms.chunks(5000) {
        let ops: Vec<TxnOp> = chunk
            .iter()
            .map(|m| TxnOp::put(etcd_key(prefix, &m.key()), etcd_value(m), None))
            .collect();
        rt.block_on(c.txn(Txn::new().and_then(ops)))
            .expect("etcd txn");
    }
}

pub fn etcd_config(etcd: &Etcd, socket: &Path, prefix: &str) -> Config {
    Config {
        control_socket: socket.to_owned(),
        source: SourceConfig::Etcd {
            endpoints: vec![etcd.endpoint()],
            prefix: prefix.to_string(),
            dial_timeout: Duration::from_secs(2),
        },
        management_netns: None,
        negative_ttl_ms: 3000,
        underlay_family: UnderlayFamily::Any,
        miss_rate_per_sec: 1000,
        miss_burst: 200,
        metrics: None,
    }
}

/// The dataplane side of the control channel, listening on a temp socket.
pub struct Peer {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    listener: UnixListener,
}

impl Peer {
    pub fn new() -> Peer {
        let dir = tempfile::tempdir().expect("temp dir for the control socket");
        let path = dir.path().join("control.sock");
        let listener = UnixListener::bind(&path).expect("bind control socket");
        Peer {
            dir,
            path,
            listener,
        }
    }

    /// Accepts the agent's connection and does the Hello exchange.
    pub fn accept(&self) -> Conn {
        self.listener.set_nonblocking(true).expect("nonblocking");
        let start = Instant::now();
        let mut s = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(start.elapsed() < PATIENCE, "the agent never connected");
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        s.set_nonblocking(false).expect("blocking");
        let instance =
            handshake(&mut s, Role::Dataplane, 0xDA7A).expect("Hello exchange with the agent");
        let reader = s.try_clone().expect("clone");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = reader;
            loop {
                let m = read_message(&mut r);
                let end = m.is_err();
                if tx.send(m.map_err(|e| e.to_string())).is_err() || end {
                    break;
                }
            }
        });
        Conn {
            stream: s,
            rx,
            instance,
        }
    }
}

/// One accepted agent connection.
pub struct Conn {
    pub stream: UnixStream,
    rx: Receiver<Result<Message, String>>,
    pub instance: u64,
}

impl Conn {
    /// The next message; `Err` when the connection ended.
    pub fn next(&self) -> Result<Message, String> {
        self.rx
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no message from the agent in {PATIENCE:?}"))
    }

    pub fn next_msg(&self) -> Message {
        self.next().expect("connection still open")
    }

    pub fn send(&mut self, m: &Message) {
        write_message(&mut self.stream, m).expect("write to the agent");
    }

    /// Reads a complete full sync and returns it as a table.
    pub fn full_sync(&self) -> HashMap<MappingKey, Mapping> {
        let mut asm = SyncAssembler::new();
        loop {
            match self.next_msg() {
                Message::SyncBegin { epoch } => asm.begin(epoch),
                Message::SyncChunk { mappings } => asm.chunk(mappings).expect("valid chunk"),
                Message::SyncEnd { epoch, count } => {
                    let all = asm.end(epoch, count).expect("consistent SyncEnd");
                    let n = all.len();
                    let map: HashMap<_, _> = all.into_iter().map(|m| (m.key(), m)).collect();
                    assert_eq!(map.len(), n, "no key twice in a sync");
                    return map;
                }
                other => panic!("expected a full sync, got {other:?}"),
            }
        }
    }

    /// The next delta, skipping nothing.
    pub fn next_delta(&self) -> Message {
        match self.next_msg() {
            m @ (Message::Upsert(_) | Message::Delete(_)) => m,
            other => panic!("expected Upsert/Delete, got {other:?}"),
        }
    }

    /// Waits for the agent's stats (sends a StatsRequest), skipping other messages.
    pub fn stats(&mut self) -> xvpc_control::StatsReport {
        self.send(&Message::StatsRequest);
        loop {
            if let Message::Stats(s) = self.next_msg() {
                return s;
            }
        }
    }
}

/// Waits (bounded) until `f` holds.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
