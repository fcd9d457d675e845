//! The agent against a real etcd (Debian's etcd-server) and a dataplane-side listener.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use xvpc_agent::{Agent, Hooks};
use xvpc_control::Message;
use xvpc_model::MappingKey;

const PREFIX: &str = "/xvpc/test";

#[test]
fn put_delete_change_reach_the_dataplane() {
    let rt = runtime();
    let etcd = Etcd::start();
    let mut c = etcd.client(&rt);
    put(&rt, &mut c, PREFIX, &mapping(1));
    let peer = Peer::new();
    let _agent =
        Agent::start(etcd_config(&etcd, &peer.path, PREFIX), Hooks::default()).expect("agent");
    let conn = peer.accept();
    let sync = conn.full_sync();
    assert_eq!(sync.len(), 1);
    assert_eq!(sync.get(&mapping(1).key()), Some(&mapping(1)));

    put(&rt, &mut c, PREFIX, &mapping(2));
    assert_eq!(conn.next_delta(), Message::Upsert(mapping(2)));
    delete(&rt, &mut c, PREFIX, &mapping(1).key());
    assert_eq!(conn.next_delta(), Message::Delete(mapping(1).key()));
    let mut changed = mapping(2);
    changed.underlay_ip = "198.19.200.1".parse().expect("ip");
    put(&rt, &mut c, PREFIX, &changed);
    assert_eq!(conn.next_delta(), Message::Upsert(changed));
    // A key outside the prefix (sharing its first characters) is not ours.
    put(&rt, &mut c, "/xvpc/testing", &mapping(3));
    put(&rt, &mut c, PREFIX, &mapping(4));
    assert_eq!(conn.next_delta(), Message::Upsert(mapping(4)));
}

#[test]
fn full_sync_of_100k_mappings() {
    let rt = runtime();
    let etcd = Etcd::start();
    let mut c = etcd.client(&rt);
    let all: Vec<_> = (0..100_000).map(mapping).collect();
    put_many(&rt, &mut c, PREFIX, &all);
    let peer = Peer::new();
    let agent =
        Agent::start(etcd_config(&etcd, &peer.path, PREFIX), Hooks::default()).expect("agent");
    let conn = peer.accept();
    let sync = conn.full_sync();
    assert_eq!(sync.len(), 100_000);
    for m in &all {
        assert_eq!(sync.get(&m.key()), Some(m), "mapping {m:?}");
    }
    assert_eq!(agent.stats().mappings, 100_000);
}

#[test]
fn change_between_load_and_watch_is_not_lost() {
    let rt = runtime();
    let etcd = Etcd::start();
    let mut c = etcd.client(&rt);
    put(&rt, &mut c, PREFIX, &mapping(1));
    // The hook runs after the first load and before the watch starts: put a key then.
    let endpoint = etcd.endpoint();
    let loaded_at = Arc::new(Mutex::new(None));
    let seen = loaded_at.clone();
    let hook = Arc::new(move |rev: i64| {
        let mut first = seen.lock().expect("lock");
        if first.is_some() {
            return;
        }
        *first = Some(rev);
        let rt = runtime();
        let mut c = rt
            .block_on(etcd_client::Client::connect([endpoint.clone()], None))
            .expect("second client");
        let r = put(&rt, &mut c, PREFIX, &mapping(2));
        assert!(r > rev, "the put lands after the load revision");
    });
    let peer = Peer::new();
    let _agent = Agent::start(
        etcd_config(&etcd, &peer.path, PREFIX),
        Hooks {
            after_etcd_load: Some(hook),
        },
    )
    .expect("agent");
    let conn = peer.accept();
    // Whether the sync already holds it depends on the order of connect and load; either
    // way mapping(2) must reach the dataplane.
    let sync = conn.full_sync();
    assert!(loaded_at.lock().expect("lock").is_some(), "the hook ran");
    if !sync.contains_key(&mapping(2).key()) {
        assert_eq!(conn.next_delta(), Message::Upsert(mapping(2)));
    }
    assert_eq!(sync.get(&mapping(1).key()), Some(&mapping(1)));
}

#[test]
fn outage_resume_and_compaction() {
    let rt = runtime();
    let mut etcd = Etcd::start();
    let mut c = etcd.client(&rt);
    for i in 0..3 {
        put(&rt, &mut c, PREFIX, &mapping(i));
    }
    let peer = Peer::new();
    let agent =
        Agent::start(etcd_config(&etcd, &peer.path, PREFIX), Hooks::default()).expect("agent");
    let mut conn = peer.accept();
    assert_eq!(conn.full_sync().len(), 3);
    wait_until("source up", || agent.stats().source_up == 1);

    // Outage: the agent keeps its state and keeps answering from it.
    etcd.stop();
    wait_until("agent notices etcd is down", || {
        agent.stats().source_up == 0
    });
    assert_eq!(agent.mappings().len(), 3);
    conn.send(&Message::Miss {
        key: mapping(1).key(),
    });
    assert_eq!(conn.next_msg(), Message::Upsert(mapping(1)));
    assert!(conn.stats().source_errors > 0);

    // Back up: changes made now arrive (resume from the last revision, no reload).
    let reloads = agent.stats().source_reloads;
    etcd.restart();
    let mut c = etcd.client(&rt);
    put(&rt, &mut c, PREFIX, &mapping(10));
    assert_eq!(conn.next_delta(), Message::Upsert(mapping(10)));
    assert_eq!(
        agent.stats().source_reloads,
        reloads,
        "resumed, not reloaded"
    );

    // Changes made while the agent cannot reach etcd arrive when it is back, by resuming
    // the watch from the last revision it saw (no reload).
    let port = etcd.port;
    etcd.stop();
    wait_until("agent notices etcd is down", || {
        agent.stats().source_up == 0
    });
    etcd.restart_on(free_port());
    let mut c = etcd.client(&rt);
    delete(&rt, &mut c, PREFIX, &mapping(0).key());
    put(&rt, &mut c, PREFIX, &mapping(11));
    etcd.restart_on(port);
    assert_eq!(conn.next_delta(), Message::Delete(mapping(0).key()));
    assert_eq!(conn.next_delta(), Message::Upsert(mapping(11)));
    assert_eq!(
        agent.stats().source_reloads,
        reloads,
        "resumed, not reloaded"
    );

    // Compaction past the agent's revision while it is away: the watch is refused, the
    // agent reloads and sends the difference (deletes first).
    etcd.stop();
    wait_until("agent notices etcd is down", || {
        agent.stats().source_up == 0
    });
    etcd.restart_on(free_port());
    let mut c = etcd.client(&rt);
    delete(&rt, &mut c, PREFIX, &mapping(1).key());
    put(&rt, &mut c, PREFIX, &mapping(12));
    let r = put(&rt, &mut c, "/other/key", &mapping(0));
    rt.block_on(c.compact(
        r,
        Some(etcd_client::CompactionOptions::new().with_physical()),
    ))
    .expect("compact");
    etcd.restart_on(port);
    assert_eq!(conn.next_delta(), Message::Delete(mapping(1).key()));
    assert_eq!(conn.next_delta(), Message::Upsert(mapping(12)));
    wait_until("reload counted", || {
        agent.stats().source_reloads == reloads + 1
    });
    let mut keys: Vec<MappingKey> = agent.mappings().iter().map(|m| m.key()).collect();
    keys.sort();
    let mut want_keys: Vec<MappingKey> =
        [2, 10, 11, 12].iter().map(|&i| mapping(i).key()).collect();
    want_keys.sort();
    assert_eq!(keys, want_keys);
}

#[test]
fn garbage_is_skipped_and_counted() {
    let rt = runtime();
    let etcd = Etcd::start();
    let mut c = etcd.client(&rt);
    put(&rt, &mut c, PREFIX, &mapping(1));
    let good = r#"{"underlay_ip":"198.19.0.9","overlay_mac":"02:00:00:00:00:09"}"#;
    let garbage = [
        (format!("{PREFIX}/100/198.18.9.1"), "not json".to_string()),
        (format!("{PREFIX}/16777216/198.18.9.2"), good.to_string()),
        (format!("{PREFIX}/nonsense"), good.to_string()),
        (
            format!("{PREFIX}/100/198.18.9.3"),
            r#"{"underlay_ip":"198.19.0.9","overlay_mac":"01:00:5e:00:00:01"}"#.into(),
        ),
        (
            format!("{PREFIX}/100/198.18.9.4"),
            r#"{"underlay_ip":"2001:2::1","overlay_mac":"zz"}"#.into(),
        ),
        (
            format!("{PREFIX}/100/198.18.9.5"),
            r#"{"underlay_ip":"239.1.1.1","overlay_mac":"02:00:00:00:00:09"}"#.into(),
        ),
    ];
    put_raw(&rt, &mut c, &garbage[0].0, &garbage[0].1);
    put_raw(&rt, &mut c, &garbage[1].0, &garbage[1].1);
    let peer = Peer::new();
    let agent =
        Agent::start(etcd_config(&etcd, &peer.path, PREFIX), Hooks::default()).expect("agent");
    let conn = peer.accept();
    let sync = conn.full_sync();
    assert_eq!(sync.len(), 1, "only the valid mapping is synced");
    assert_eq!(agent.stats().invalid_skipped, 2);
    for (k, v) in &garbage[2..] {
        put_raw(&rt, &mut c, k, v);
    }
    put(&rt, &mut c, PREFIX, &mapping(2));
    assert_eq!(
        conn.next_delta(),
        Message::Upsert(mapping(2)),
        "garbage never reaches the dataplane"
    );
    wait_until("all garbage counted", || agent.stats().invalid_skipped == 6);
    assert_eq!(agent.mappings().len(), 2);
}

#[test]
fn misses_answered_and_rate_limited() {
    let rt = runtime();
    let etcd = Etcd::start();
    let mut c = etcd.client(&rt);
    put(&rt, &mut c, PREFIX, &mapping(1));
    let peer = Peer::new();
    let mut cfg = etcd_config(&etcd, &peer.path, PREFIX);
    cfg.miss_rate_per_sec = 50;
    cfg.miss_burst = 50;
    let agent = Agent::start(cfg, Hooks::default()).expect("agent");
    let mut conn = peer.accept();
    conn.full_sync();

    conn.send(&Message::Miss {
        key: mapping(1).key(),
    });
    assert_eq!(conn.next_msg(), Message::Upsert(mapping(1)));
    let absent = mapping(7).key();
    conn.send(&Message::Miss { key: absent });
    assert_eq!(
        conn.next_msg(),
        Message::NotFound {
            key: absent,
            ttl_ms: 3000
        }
    );
    assert_eq!(
        agent.stats().source_lookups,
        1,
        "only the absent key needed etcd"
    );

    // A scanning guest: 10,000 misses for distinct absent keys.
    for i in 0..10_000u32 {
        conn.send(&Message::Miss {
            key: mapping(1_000_000 + i).key(),
        });
    }
    wait_until("every miss accounted for", || {
        let s = agent.stats();
        s.misses == 10_002
            && s.source_lookups + s.misses_rate_limited + s.misses_deduplicated + 1 == s.misses
    });
    let s = agent.stats();
    assert!(
        s.misses_rate_limited > 5_000,
        "the limiter dropped most of the flood: {s:?}"
    );
    assert!(
        s.source_lookups < 5_000,
        "etcd was not asked 10,000 times: {s:?}"
    );
    // Every lookup that was made is answered with NotFound.
    wait_until("answers for all lookups", || {
        agent.stats().not_found == s.source_lookups
    });
}

/// etcd sends GOAWAY ("too_many_pings") to clients that ping more often than its
/// `--grpc-keepalive-min-time` (5 s): the agent's keepalive must stay above it, or the watch
/// breaks every few seconds. Watching for 12 s (over two 5 s strike windows) shows no error.
#[test]
fn watch_survives_etcd_keepalive_policy() {
    let rt = runtime();
    let etcd = Etcd::start();
    let mut c = etcd.client(&rt);
    put(&rt, &mut c, PREFIX, &mapping(1));
    let peer = Peer::new();
    let agent =
        Agent::start(etcd_config(&etcd, &peer.path, PREFIX), Hooks::default()).expect("agent");
    let conn = peer.accept();
    assert_eq!(conn.full_sync().len(), 1);
    std::thread::sleep(std::time::Duration::from_secs(12));
    let s = agent.stats();
    assert_eq!(s.source_errors, 0, "the watch broke: {s:?}");
    assert_eq!(s.source_up, 1);
    put(&rt, &mut c, PREFIX, &mapping(2));
    assert_eq!(conn.next_delta(), Message::Upsert(mapping(2)));
}
