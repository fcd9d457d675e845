//! The control thread's full-sync work, measured in-process: what the daemon's
//! `Fanout::replace` does, rebuilt from public `xvpc_core` APIs — compile every mapping into
//! one fixed-capacity [`MappingTable`] (the control path's shadow), clone it once per
//! worker, and free the old shadow and the tables the workers hand back.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use xvpc_core::model::{Fabric, MacAddr, Mapping, Vni};
use xvpc_core::table::{Compiler, MappingTable};

/// Wall time of each phase of one full sync.
#[derive(Clone, Copy, Debug, Default)]
pub struct Phases {
    /// Compile and insert every mapping into one table.
    pub compile: Duration,
    /// Clone the table once per worker.
    pub clone: Duration,
    /// Free the built table and the workers' old tables.
    pub free: Duration,
    /// Live mappings in the table (to check nothing was rejected).
    pub mapped: usize,
}

impl Phases {
    /// All phases together.
    pub fn total(&self) -> Duration {
        self.compile + self.clone + self.free
    }
}

/// The fabric of the standard test topology (`xvpc_testbed::vpc`): what the daemon's
/// compiler sees there.
pub fn testbed_fabric() -> Fabric {
    Fabric {
        underlay_ipv4: Some(Ipv4Addr::new(198, 18, 0, 2)),
        underlay_ipv6: Some(Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 2)),
        local_mac: MacAddr([0x02, 0, 0, 0, 0x0f, 0x02]),
        next_hop_mac: MacAddr([0x02, 0, 0, 0, 0x0f, 0x01]),
        vxlan_port: Fabric::VXLAN_PORT,
        mtu: 1500,
        udp6_zero_checksum_tx: false,
        udp6_zero_checksum_rx: false,
    }
}

/// Build the table the way the control thread does (fixed capacity, invalid mappings
/// skipped).
pub fn build_table(
    compiler: &Compiler,
    vni: Vni,
    epoch: u64,
    mappings: &[Mapping],
) -> MappingTable {
    let mut table = MappingTable::fixed(epoch, mappings.len());
    for mapping in mappings {
        if mapping.vni != vni {
            continue;
        }
        if let Ok(entry) = compiler.compile(mapping) {
            table.upsert(mapping.key(), entry);
        }
    }
    table
}

/// One full sync of `mappings` into `workers` workers. `old` is what the previous sync
/// returned (the workers' tables and the shadow), freed here as in the daemon. Returns the
/// workers' new tables followed by the new shadow.
pub fn full_sync(
    compiler: &Compiler,
    vni: Vni,
    mappings: &[Mapping],
    workers: usize,
    old: Vec<MappingTable>,
) -> (Phases, Vec<MappingTable>) {
    let mut phases = Phases::default();
    let t = Instant::now();
    let shadow = build_table(compiler, vni, 1, mappings);
    phases.compile = t.elapsed();
    phases.mapped = shadow.mapped_len();

    let t = Instant::now();
    let mut tables: Vec<MappingTable> = (0..workers).map(|_| shadow.clone()).collect();
    phases.clone = t.elapsed();

    let t = Instant::now();
    drop(old);
    phases.free = t.elapsed();
    tables.push(shadow);
    (phases, tables)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mappings::generate;

    #[test]
    fn full_sync_builds_one_table_per_worker() {
        let compiler = Compiler::new(testbed_fabric());
        let vni = Vni::new(100).expect("valid VNI");
        let mappings = generate(100, 5000).expect("within the plan");
        let (phases, tables) = full_sync(&compiler, vni, &mappings, 2, Vec::new());
        assert_eq!(phases.mapped, 5000);
        assert_eq!(tables.len(), 3, "two workers' tables and the shadow");
        for t in &tables {
            assert_eq!(t.mapped_len(), 5000);
        }
        // Another VNI's mappings are skipped, as the daemon rejects them.
        let other = generate(101, 10).expect("within the plan");
        assert_eq!(build_table(&compiler, vni, 2, &other).mapped_len(), 0);
        let (again, tables) = full_sync(&compiler, vni, &mappings, 2, tables);
        assert_eq!((again.mapped, tables.len()), (5000, 3));
        assert!(again.total() >= again.compile);
    }
}
