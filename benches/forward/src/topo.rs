//! The three-namespace topology, rebuilt for every measurement and deleted on drop:
//!
//! ```text
//! egress:   gen (g0) ──veth── (d0) DUT (d1) ──veth── (s0) sink   plain UDP in, VXLAN out
//! ingress: sink (g0) ──veth── (d0) DUT (d1) ──veth── (s0) gen    VXLAN in, plain UDP out
//! ```
//!
//! Rebuilding per measurement is also what keeps systems apart: xvpc pins its XDP programs
//! (they outlive the daemon) and OVS and testpmd attach their own; deleting the DUT namespace
//! removes its veths and every program on them before the next system starts.
//!
//! Addresses: guest 198.18.1.2 (behind d0, gateway 198.18.1.1), remote overlay 198.18.2.2;
//! underlay 198.19.0.1 (DUT, d1) <-> 198.19.0.2 (s0). VNI 100, UDP 4789.
use xvpc_testbed::Netns;

use crate::options::{Dir, System};
use crate::HarnessError;

/// The guest's MAC (g0).
pub const GUEST_MAC: &str = "02:00:00:00:01:02";
/// The guest's gateway MAC (d0, and vx100 for the kernel).
pub const GW_MAC: &str = "02:00:00:00:01:01";
/// The remote overlay address's MAC.
pub const REMOTE_OVL_MAC: &str = "02:00:00:00:02:02";
/// The DUT's fabric MAC (d1).
pub const DUT_FAB_MAC: &str = "02:00:00:00:0f:01";
/// The fabric peer's MAC (s0).
pub const PEER_FAB_MAC: &str = "02:00:00:00:0f:02";
/// The VNI.
pub const VNI: u32 = 100;
/// The generator's CPU (and the sink's receive thread's).
pub const GEN_CPU: usize = 0;
/// The DUT's CPU.
pub const DUT_CPU: usize = 1;

/// The namespaces of one measurement. Dropping it kills what still runs inside and deletes
/// them (and with them every veth and XDP program).
pub struct Topology {
    /// The generator's side of egress (g0).
    pub gen: Netns,
    /// The device under test (d0, d1).
    pub dut: Netns,
    /// The fabric side (s0).
    pub snk: Netns,
}

impl Topology {
    /// Builds it: veths with fixed MACs, GRO on (so a veth has a NAPI instance that XDP
    /// frames can be sent to, and whose work can be moved to a thread), TX checksum offload off
    /// (kernel-built packets must carry complete checksums on veth), threaded NAPI if `steer`.
    pub fn new(steer: bool) -> Result<Topology, HarnessError> {
        let t = Topology {
            gen: Netns::new("bgen")?,
            dut: Netns::new("bdut")?,
            snk: Netns::new("bsnk")?,
        };
        for ns in [&t.gen, &t.dut, &t.snk] {
            ns.sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1")?;
        }
        t.gen.ip(&[
            "link",
            "add",
            "g0",
            "type",
            "veth",
            "peer",
            "name",
            "d0",
            "netns",
            t.dut.name(),
        ])?;
        t.dut.ip(&[
            "link",
            "add",
            "d1",
            "type",
            "veth",
            "peer",
            "name",
            "s0",
            "netns",
            t.snk.name(),
        ])?;
        for (ns, dev, mac) in [
            (&t.gen, "g0", GUEST_MAC),
            (&t.dut, "d0", GW_MAC),
            (&t.dut, "d1", DUT_FAB_MAC),
            (&t.snk, "s0", PEER_FAB_MAC),
        ] {
            ns.ip(&["link", "set", dev, "address", mac, "up"])?;
            let mut script =
                format!("ethtool -K {dev} gro on >/dev/null && ethtool -K {dev} tx off >/dev/null");
            if steer {
                script.push_str(&format!(" && echo 1 > /sys/class/net/{dev}/threaded"));
            }
            ns.sh(&script)?;
        }
        Ok(t)
    }

    /// Who sends and who receives in `dir`.
    pub fn roles(&self, dir: Dir) -> Roles<'_> {
        match dir {
            Dir::Egress => Roles {
                tx_ns: &self.gen,
                tx_dev: "g0",
                rx_ns: &self.snk,
                rx_dev: "s0",
                dut_in: "d0",
                dut_out: "d1",
            },
            Dir::Ingress => Roles {
                tx_ns: &self.snk,
                tx_dev: "s0",
                rx_ns: &self.gen,
                rx_dev: "g0",
                dut_in: "d1",
                dut_out: "d0",
            },
        }
    }
}

/// The direction-dependent roles.
pub struct Roles<'a> {
    /// The generator's namespace.
    pub tx_ns: &'a Netns,
    /// The generator's device.
    pub tx_dev: &'static str,
    /// The sink's namespace.
    pub rx_ns: &'a Netns,
    /// The sink's device.
    pub rx_dev: &'static str,
    /// The DUT's receiving device.
    pub dut_in: &'static str,
    /// The DUT's sending device.
    pub dut_out: &'static str,
}

/// The generator's frame arguments (addresses; size and rate come separately).
pub fn gen_args(sys: System, dir: Dir) -> Vec<String> {
    let a: Vec<&str> = match dir {
        Dir::Egress => vec![
            "--src-mac",
            GUEST_MAC,
            "--dst-mac",
            GW_MAC,
            "--src-ip",
            "198.18.1.2",
            "--dst-ip",
            "198.18.2.2",
        ],
        Dir::Ingress => vec![
            "--vxlan-vni",
            "100",
            "--outer-src-mac",
            PEER_FAB_MAC,
            "--outer-dst-mac",
            DUT_FAB_MAC,
            "--outer-src-ip",
            "198.19.0.2",
            "--outer-dst-ip",
            "198.19.0.1",
            "--src-mac",
            REMOTE_OVL_MAC,
            "--dst-mac",
            // The inner frame is addressed to the guest for xvpc (it checks), to vx100's MAC
            // for the kernel, and OVS rewrites it: the guest's MAC everywhere except the kernel.
            if sys == System::KernelVxlan {
                GW_MAC
            } else {
                GUEST_MAC
            },
            "--src-ip",
            "198.18.2.2",
            "--dst-ip",
            "198.18.1.2",
        ],
    };
    a.into_iter().map(String::from).collect()
}

/// The generator's frame size: the guest's frame, 50 bytes more on the fabric (ingress).
pub fn gen_size(dir: Dir, size: u16) -> u16 {
    match dir {
        Dir::Egress => size,
        Dir::Ingress => size + 50,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_inner_mac_depends_on_the_system() {
        let k = gen_args(System::KernelVxlan, Dir::Ingress);
        let x = gen_args(System::Xvpc, Dir::Ingress);
        // bench.sh's GEN_ARGS[13]: the inner --dst-mac value.
        assert_eq!(k[12], "--dst-mac");
        assert_eq!(k[13], GW_MAC);
        assert_eq!(x[13], GUEST_MAC);
        assert_eq!(k[1], VNI.to_string());
        assert_eq!(
            gen_args(System::KernelVxlan, Dir::Egress),
            gen_args(System::Ovs, Dir::Egress)
        );
        assert_eq!(gen_size(Dir::Ingress, 1400), 1450);
        assert_eq!(gen_size(Dir::Egress, 64), 64);
    }
}
