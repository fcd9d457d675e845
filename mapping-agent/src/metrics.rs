//! The agent's `/metrics` (Prometheus text format): the state of the mapping source, of the
//! link to the dataplane, and the agent's counters. Built from [`Store`] on each scrape.

use std::sync::atomic::Ordering;

use xvpc_control::metrics::Exposition;

use crate::store::Store;

/// The whole exposition.
pub fn render(store: &Store) -> String {
    let r = store.report();
    let (connected, connections) = store.dataplane_link();
    let mut e = Exposition::new();
    e.gauge(
        "xvpc_agent_build_info",
        "The running agent's version.",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    for (name, help, value) in [
        (
            "xvpc_agent_source_up",
            "1 while the mapping source is reachable (the file source: always).",
            r.source_up as f64,
        ),
        (
            "xvpc_agent_source_ready",
            "1 once the mapping source has been loaded (no full sync happens before).",
            f64::from(u8::from(store.is_ready())),
        ),
        (
            "xvpc_agent_source_revision",
            "The source revision the agent's table reflects (etcd revision; 0 for a file).",
            store.revision() as f64,
        ),
        (
            "xvpc_agent_mappings",
            "Mappings in the agent's table.",
            r.mappings as f64,
        ),
        (
            "xvpc_agent_epoch",
            "Epoch of the last full sync sent.",
            r.epoch as f64,
        ),
        (
            "xvpc_agent_dataplane_connected",
            "1 while connected to the dataplane's control socket.",
            f64::from(u8::from(connected)),
        ),
    ] {
        e.gauge(name, help, &[], value);
    }
    let c = &store.counters;
    for (name, help, value) in [
        (
            "xvpc_agent_dataplane_connections_total",
            "Connections made to the dataplane (the first one, then every reconnect).",
            connections,
        ),
        (
            "xvpc_agent_full_syncs_total",
            "Full syncs sent to the dataplane.",
            r.full_syncs,
        ),
        (
            "xvpc_agent_upserts_total",
            "Upserts sent (full syncs excluded).",
            r.upserts,
        ),
        ("xvpc_agent_deletes_total", "Deletes sent.", r.deletes),
        (
            "xvpc_agent_misses_total",
            "Misses received from the dataplane.",
            r.misses,
        ),
        (
            "xvpc_agent_misses_answered_total",
            "Misses answered (a mapping or NotFound sent back).",
            c.misses_answered.load(Ordering::Relaxed),
        ),
        (
            "xvpc_agent_misses_rate_limited_total",
            "Misses dropped by the rate limiter.",
            r.misses_rate_limited,
        ),
        (
            "xvpc_agent_misses_deduplicated_total",
            "Misses dropped because the same key was already being looked up.",
            r.misses_deduplicated,
        ),
        (
            "xvpc_agent_source_lookups_total",
            "Lookups made in the mapping source to answer misses.",
            r.source_lookups,
        ),
        (
            "xvpc_agent_not_found_total",
            "NotFound answers sent.",
            r.not_found,
        ),
        (
            "xvpc_agent_source_errors_total",
            "Failed connections to, or lost streams from, the mapping source.",
            r.source_errors,
        ),
        (
            "xvpc_agent_source_reloads_total",
            "Full reloads of the mapping source.",
            r.source_reloads,
        ),
        (
            "xvpc_agent_invalid_skipped_total",
            "Invalid entries (garbage) in the source, skipped.",
            r.invalid_skipped,
        ),
    ] {
        e.counter(name, help, &[], value);
    }
    e.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::bump;

    #[test]
    fn renders_state_and_counters() {
        let store = Store::new(1000);
        bump(&store.counters.invalid_skipped);
        let text = render(&store);
        assert!(
            text.contains("\nxvpc_agent_invalid_skipped_total 1\n"),
            "{text}"
        );
        assert!(
            text.contains("\nxvpc_agent_dataplane_connected 0\n"),
            "{text}"
        );
        assert!(text.contains("\nxvpc_agent_source_ready 0\n"), "{text}");
    }
}
