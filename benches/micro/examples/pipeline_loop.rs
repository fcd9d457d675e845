//! A fixed number of packets through egress and ingress, for instruction counting under
//! `valgrind --tool=callgrind` (repeatable on a shared, noisy machine, unlike wall time):
//!
//! ```sh
//! cargo build --release -p xvpc-benches --example pipeline_loop
//! valgrind --tool=callgrind --callgrind-out-file=cg.out target/release/examples/pipeline_loop egress 1000 100000
//! ```
//! Instructions per packet = (total − the same run with 0 packets) / packets.

use std::hint::black_box;

use xvpc_benches::{
    destinations, fabric_frame, guest_frame, mapping, table, Ring, Setup, FRAMES, HEADROOM,
};
use xvpc_core::counters::Counters;
use xvpc_core::egress::egress;
use xvpc_core::frame::Frame;
use xvpc_core::ingress::ingress;
use xvpc_core::pipeline::Context;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: pipeline_loop egress|ingress MAPPINGS PACKETS";
    let direction = args.get(1).expect(usage).clone();
    let mappings: usize = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
    let packets: usize = args.get(3).and_then(|s| s.parse().ok()).expect(usage);
    let setup = Setup::new();
    let table = table(&setup, mappings, false);
    let dsts = destinations(&setup, mappings, FRAMES, 0x5eed);
    let inputs: Vec<Vec<u8>> = dsts
        .iter()
        .map(|&i| match direction.as_str() {
            "egress" => {
                let std::net::IpAddr::V4(dst) = mapping(i, false).overlay_ip else {
                    unreachable!("benchmark overlays are IPv4")
                };
                guest_frame(dst, 64, i as u16)
            }
            _ => fabric_frame(&setup, i, 64, false),
        })
        .collect();
    let mut ring = Ring::new(inputs);
    let ctx = Context {
        guest: &setup.guest,
        gateway: &setup.gateway,
        fabric: &setup.fabric,
    };
    let mut counters = Counters::default();
    for n in 0..packets {
        let i = n % FRAMES;
        ring.restore_ahead(i);
        let len = ring.inputs[i].len();
        let mut frame = Frame::new(&mut ring.buffers[i], HEADROOM, len).expect("fits");
        let verdict = if direction == "egress" {
            egress(&ctx, &table, 0, &mut frame, &mut counters)
        } else {
            ingress(&ctx, &table, 0, &mut frame, &mut counters)
        };
        black_box(verdict);
    }
    assert_eq!(counters.total_drops(), 0, "{counters:?}");
    println!("{} packets, {} drops", packets, counters.total_drops());
}
