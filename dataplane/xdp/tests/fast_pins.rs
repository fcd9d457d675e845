//! Privileged test: the fast-path tier keeps the pinned lifecycle. Switching the guest port
//! from `xvpc_guest` to `xvpc_guest_fast` is an atomic upgrade of the same link, a restart
//! reuses it with its pinned mapping table (and the generation a full sync made live), and
//! `detach_pinned` removes its maps too.

#[path = "../../core/tests/common/mod.rs"]
mod common;

use std::net::IpAddr;

use xvpc_core::model::{MacAddr, Mapping};
use xvpc_testbed::{require_root, veth_pair, MountDir, Netns};
use xvpc_xdp::{
    detach_pinned, Adoption, AttachMode, FastPathSpec, GuestFastPath, GuestSteering, PinDir,
};

#[test]
fn the_fast_tier_is_an_upgrade_of_the_pinned_guest_program() {
    require_root();
    let ns = Netns::new("fpin").expect("ns");
    veth_pair((&ns, "fpg0"), (&ns, "fpg1")).expect("veth");
    let bpffs = MountDir::new("fast-pins");
    let pins = PinDir::prepare(bpffs.path()).expect("bpffs pin dir");
    let env = common::shared_env(false);
    let spec = FastPathSpec {
        ctx: env.ctx(),
        capacity: 128,
    };
    let mapping = Mapping {
        vni: env.guest.vni,
        overlay_ip: "198.18.10.3".parse::<IpAddr>().expect("ip"),
        underlay_ip: "198.18.0.1".parse::<IpAddr>().expect("ip"),
        overlay_mac: MacAddr([2, 0, 0, 0, 2, 2]),
    };
    let result = ns.run_in(|| {
        let guest =
            GuestSteering::attach("fpg0", AttachMode::Driver, Some(&pins)).expect("guest program");
        assert_eq!(guest.adoption(), &Adoption::Fresh);
        drop(guest);
        // lo (ifindex 1 in every namespace) stands in for the fabric port.
        let mut fast = GuestFastPath::attach("fpg0", AttachMode::Driver, &spec, 1, Some(&pins))
            .expect("fast-path program");
        assert!(
            matches!(fast.adoption(), Adoption::Upgraded { .. }),
            "{:?}",
            fast.adoption()
        );
        fast.maps().upsert(&mapping).expect("upsert");
        drop(fast);
        let mut again = GuestFastPath::attach("fpg0", AttachMode::Driver, &spec, 1, Some(&pins))
            .expect("restart");
        assert!(
            matches!(again.adoption(), Adoption::Reused { .. }),
            "{:?}",
            again.adoption()
        );
        assert!(
            again.maps().contains(&mapping.key()).expect("lookup"),
            "the pinned mapping table outlives the process that filled it"
        );
        // A full sync replaces the table under the next generation and drops the rest.
        let other = Mapping {
            overlay_ip: "198.18.10.4".parse::<IpAddr>().expect("ip"),
            ..mapping
        };
        let before = again.maps().generation();
        let sync = again.maps().replace_all([&other]).expect("full sync");
        assert_eq!(
            (sync.generation, sync.written, sync.no_room, sync.removed),
            (before.wrapping_add(1), 1, 0, 1)
        );
        assert!(!again.maps().contains(&mapping.key()).expect("lookup"));
        assert!(again.maps().contains(&other.key()).expect("lookup"));
        assert_eq!(again.maps().len().expect("walk"), 1);
        drop(again);
        // The generation is pinned with the map: a restart finds the synced entries live.
        let mut third = GuestFastPath::attach("fpg0", AttachMode::Driver, &spec, 1, Some(&pins))
            .expect("second restart");
        assert_eq!(third.maps_ref().generation(), before.wrapping_add(1));
        assert!(third.maps_ref().contains(&other.key()).expect("lookup"));
        // A process killed between a stage and its publish leaves the staged entries in the
        // pinned map, under the generation the next process publishes next.
        let orphan = Mapping {
            overlay_ip: "198.18.10.5".parse::<IpAddr>().expect("ip"),
            ..mapping
        };
        let _interrupted = third.maps().stage([&orphan]).expect("stage");
        assert_eq!(
            third.maps().len().expect("walk"),
            2,
            "staged beside the live one"
        );
        drop(third);
        let mut fourth = GuestFastPath::attach("fpg0", AttachMode::Driver, &spec, 1, Some(&pins))
            .expect("restart after an interrupted sync");
        fourth.maps().replace_all([&other]).expect("full sync");
        assert!(
            !fourth.maps().contains(&orphan.key()).expect("lookup"),
            "an interrupted stage's entry went live with the next full sync"
        );
        assert_eq!(fourth.maps().len().expect("walk"), 1);
        drop(fourth);
        detach_pinned(pins.root(), "fpg0").expect("detach")
    });
    let removed = result.removed;
    for pin in [
        "link",
        "mappings",
        "drops",
        "fast_counters",
        "tx_port",
        "generation",
    ] {
        assert!(
            removed.iter().any(|r| r == pin),
            "{pin} not removed: {removed:?}"
        );
    }
}

/// The ingress half: `xvpc_fabric` → `xvpc_fabric_fast` is an atomic upgrade of the pinned
/// fabric link, a restart reuses it, and back to `xvpc_fabric` is an upgrade again. It needs
/// the guest fast path's pinned maps (it shares them) and is replaced, not reused, when the
/// guest's maps were made anew since (it would check senders against a table nobody writes).
#[test]
fn the_fast_fabric_tier_is_an_upgrade_of_the_pinned_fabric_program() {
    use xvpc_xdp::{FabricFastPath, FabricFilter, FabricSteering, XdpError};
    require_root();
    let ns = Netns::new("ffpin").expect("ns");
    veth_pair((&ns, "ffg0"), (&ns, "ffg1")).expect("guest veth");
    veth_pair((&ns, "fff0"), (&ns, "fff1")).expect("fabric veth");
    let bpffs = MountDir::new("fabric-pins");
    let pins = PinDir::prepare(bpffs.path()).expect("bpffs pin dir");
    let env = common::shared_env(false);
    let spec = FastPathSpec {
        ctx: env.ctx(),
        capacity: 128,
    };
    let filter = FabricFilter {
        underlay_ipv4: env.fabric.underlay_ipv4,
        underlay_ipv6: env.fabric.underlay_ipv6,
        vxlan_port: env.fabric.vxlan_port,
    };
    ns.run_in(|| {
        let plain = FabricSteering::attach("fff0", AttachMode::Driver, &filter, Some(&pins))
            .expect("fabric program");
        assert_eq!(plain.adoption(), &Adoption::Fresh);
        drop(plain);
        let refused = FabricFastPath::attach("fff0", AttachMode::Driver, &spec, "ffg0", 1, &pins);
        assert!(
            matches!(refused, Err(XdpError::Pin { .. })),
            "without the guest fast path's maps: {refused:?}"
        );
        let guest = GuestFastPath::attach("ffg0", AttachMode::Driver, &spec, 1, Some(&pins))
            .expect("guest fast path");
        let fast = FabricFastPath::attach("fff0", AttachMode::Driver, &spec, "ffg0", 1, &pins)
            .expect("fabric fast path");
        assert!(
            matches!(fast.adoption(), Adoption::Upgraded { .. }),
            "{:?}",
            fast.adoption()
        );
        drop(fast);
        let again = FabricFastPath::attach("fff0", AttachMode::Driver, &spec, "ffg0", 1, &pins)
            .expect("restart");
        assert!(
            matches!(again.adoption(), Adoption::Reused { .. }),
            "{:?}",
            again.adoption()
        );
        drop(again);
        // The guest's maps made anew: the fabric program must follow them.
        drop(guest);
        detach_pinned(pins.root(), "ffg0").expect("detach the guest");
        let _guest = GuestFastPath::attach("ffg0", AttachMode::Driver, &spec, 1, Some(&pins))
            .expect("guest fast path again");
        let follows = FabricFastPath::attach("fff0", AttachMode::Driver, &spec, "ffg0", 1, &pins)
            .expect("fabric fast path on the new maps");
        assert!(
            matches!(follows.adoption(), Adoption::Upgraded { .. }),
            "{:?}",
            follows.adoption()
        );
        drop(follows);
        let back = FabricSteering::attach("fff0", AttachMode::Driver, &filter, Some(&pins))
            .expect("back to xvpc_fabric");
        assert!(
            matches!(back.adoption(), Adoption::Upgraded { .. }),
            "{:?}",
            back.adoption()
        );
        drop(back);
        detach_pinned(pins.root(), "fff0").expect("detach the fabric");
        detach_pinned(pins.root(), "ffg0").expect("detach the guest");
    });
}
