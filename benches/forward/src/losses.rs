//! Where a full-speed run's missing frames went, for every system: the kernel counters on the
//! path around the DUT, read before and after the run. Pure; the harness reads the counters.
//!
//! - `gen_refused`: the generator's veth `tx_dropped`, frames the DUT's receiving veth had no
//!   room for (its NAPI ring was full);
//! - `in_<stat>`: the DUT's receiving veth's own drop and error counters (`ethtool -S`, e.g.
//!   `rx_queue_0_drops`, which counts redirects into a socket that failed, and
//!   `rx_queue_0_xdp_drops`, an XDP program's drops);
//! - `xsk_rx_dropped`, `xsk_fill_empty`, `xsk_ring_full` (xvpc only, from its stats): the
//!   kernel could not place a frame in the worker's socket because no fill descriptor was
//!   there (the fill ring ran empty) or the RX ring was full;
//! - `out_refused`: the DUT's sending veth's `tx_dropped`, frames the sink's veth had no room
//!   for.
//!
//! Only counters that moved are listed, so an empty column means the kernel dropped nothing
//! on the way that it counts.
use serde_json::Value;

use crate::options::Dir;

/// The drop and error counters of `ethtool -S` output, by name.
pub fn ethtool_drops(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.trim().split_once(':')?;
            let name = name.trim();
            let droppy = name.contains("drop") || name.contains("err");
            droppy
                .then(|| value.trim().parse().ok().map(|v| (name.to_string(), v)))
                .flatten()
        })
        .collect()
}

/// The socket counters of the port a direction receives on, summed over xvpc's workers:
/// `(rx_dropped, rx_fill_ring_empty, rx_ring_full)`. `None`: no worker reported them.
pub fn xsk_counters(stats: &Value, dir: Dir) -> Option<(u64, u64, u64)> {
    let port = match dir {
        Dir::Egress => "guest",
        Dir::Ingress => "fabric",
    };
    let mut sum = None;
    for w in stats.get("workers")?.as_array()? {
        let k = &w["kernel"][port];
        let get = |name: &str| k.get(name).and_then(Value::as_u64);
        if let (Some(d), Some(f), Some(r)) = (
            get("rx_dropped"),
            get("rx_fill_ring_empty"),
            get("rx_ring_full"),
        ) {
            let (sd, sf, sr) = sum.unwrap_or((0, 0, 0));
            sum = Some((sd + d, sf + f, sr + r));
        }
    }
    sum
}

/// One reading of every counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// The generator's veth `tx_dropped`.
    pub gen_tx_dropped: u64,
    /// The DUT's receiving veth's `ethtool -S` drop and error counters.
    pub dut_in: Vec<(String, u64)>,
    /// xvpc's socket counters on the receiving port ([`xsk_counters`]).
    pub xsk: Option<(u64, u64, u64)>,
    /// The DUT's sending veth's `tx_dropped`.
    pub dut_out_tx_dropped: u64,
}

/// What moved between two readings, as `name=N;name=N` (the `losses` CSV column).
pub fn column(before: &Reading, after: &Reading) -> String {
    let mut out: Vec<(String, u64)> = Vec::new();
    let mut push = |name: &str, b: u64, a: u64| {
        if a > b {
            out.push((name.to_string(), a - b));
        }
    };
    push("gen_refused", before.gen_tx_dropped, after.gen_tx_dropped);
    for (name, a) in &after.dut_in {
        let b = before
            .dut_in
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |(_, v)| *v);
        push(&format!("in_{name}"), b, *a);
    }
    if let (Some(b), Some(a)) = (before.xsk, after.xsk) {
        push("xsk_rx_dropped", b.0, a.0);
        push("xsk_fill_empty", b.1, a.1);
        push("xsk_ring_full", b.2, a.2);
    }
    push(
        "out_refused",
        before.dut_out_tx_dropped,
        after.dut_out_tx_dropped,
    );
    out.iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A veth's `ethtool -S` with an XDP program attached (6.18), trimmed.
    const VETH: &str = "NIC statistics:
     peer_ifindex: 5
     rx_queue_0_xdp_packets: 1200
     rx_queue_0_xdp_bytes: 76800
     rx_queue_0_drops: 7
     rx_queue_0_xdp_redirect: 1190
     rx_queue_0_xdp_drops: 3
     rx_queue_0_xdp_tx_errors: 0
     tx_queue_0_xdp_xmit: 0
     tx_queue_0_xdp_xmit_errors: 0
";

    #[test]
    fn ethtool_keeps_the_drop_and_error_counters() {
        let d = ethtool_drops(VETH);
        let names: Vec<&str> = d.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "rx_queue_0_drops",
                "rx_queue_0_xdp_drops",
                "rx_queue_0_xdp_tx_errors",
                "tx_queue_0_xdp_xmit_errors"
            ]
        );
        assert_eq!(d[0].1, 7);
        assert_eq!(d[1].1, 3);
        assert!(ethtool_drops("garbage\nrx_drops: x\n: 4\n").is_empty());
    }

    fn stats(dropped: u64, empty: u64, full: u64) -> Value {
        let k = json!({"rx_dropped": dropped, "rx_fill_ring_empty": empty, "rx_ring_full": full});
        json!({"workers": [
            {"kernel": {"guest": k, "fabric": null}},
            {"kernel": {"guest": k, "fabric": {"rx_dropped": 100, "rx_fill_ring_empty": 0, "rx_ring_full": 0}}},
        ]})
    }

    #[test]
    fn xsk_counters_sum_the_receiving_port_over_the_workers() {
        assert_eq!(xsk_counters(&stats(2, 5, 1), Dir::Egress), Some((4, 10, 2)));
        assert_eq!(
            xsk_counters(&stats(2, 5, 1), Dir::Ingress),
            Some((100, 0, 0))
        );
        assert_eq!(xsk_counters(&json!({"total": {}}), Dir::Egress), None);
    }

    #[test]
    fn the_column_lists_only_what_moved() {
        let before = Reading {
            gen_tx_dropped: 10,
            dut_in: ethtool_drops(VETH),
            xsk: Some((1, 1, 1)),
            dut_out_tx_dropped: 4,
        };
        let mut after = before.clone();
        assert_eq!(column(&before, &after), "");
        after.gen_tx_dropped = 15;
        after.dut_in[1].1 = 9;
        after.xsk = Some((1, 301, 1));
        after.dut_out_tx_dropped = 6;
        assert_eq!(
            column(&before, &after),
            "gen_refused=5;in_rx_queue_0_xdp_drops=6;xsk_fill_empty=300;out_refused=2"
        );
        // A counter that appears only after the run counts from zero.
        after.dut_in.push(("rx_queue_1_drops".into(), 2));
        assert!(column(&before, &after).contains("in_rx_queue_1_drops=2"));
        // Other systems have no socket counters.
        let (b, a) = (
            Reading {
                xsk: None,
                ..before
            },
            Reading { xsk: None, ..after },
        );
        assert!(!column(&b, &a).contains("xsk"));
    }
}
