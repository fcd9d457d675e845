//! Facts about this host's interfaces that the config may leave out: MAC, MTU, and the
//! fabric next hop's MAC from the kernel's neighbour table.
//!
//! Every fact comes from the kernel over netlink (`ip -j link`), never from /sys/class/net:
//! sysfs shows the network namespace of whoever mounted it, not ours. Under systemd's
//! `NetworkNamespacePath=` or `systemd-nspawn --network-namespace-path=` /sys is the host's, so
//! reading it finds no interface, or the MAC and MTU of a host interface of the same name.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use xvpc_core::model::MacAddr;

/// Why an interface fact could not be learned.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The interface does not exist in this network namespace.
    #[error("interface {0} does not exist in this network namespace")]
    NoInterface(String),
    /// `ip` could not be run (iproute2 is a dependency of the package).
    #[error("cannot run `ip -j link show dev {interface}`: {reason}")]
    Ip {
        /// The interface asked about.
        interface: String,
        /// Why.
        reason: String,
    },
    /// The kernel's answer lacked or garbled an attribute.
    #[error("interface {interface}: bad or missing {attribute} in the kernel's answer: {reason}")]
    Attribute {
        /// The interface.
        interface: String,
        /// The attribute (`ifindex`, `address`, `mtu`).
        attribute: &'static str,
        /// Why.
        reason: String,
    },
    /// The next hop did not resolve.
    #[error("no neighbour entry for {ip} on {interface} after 2 s: check the fabric link, or set fabric.next_hop_mac")]
    Unresolved {
        /// The next hop.
        ip: IpAddr,
        /// The fabric interface.
        interface: String,
    },
}

/// What the kernel says about one interface of this network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its index.
    pub ifindex: u32,
    /// Its MAC address.
    pub mac: MacAddr,
    /// Its MTU.
    pub mtu: u16,
    /// Its kind (`veth`, `vxlan`, ...), `None` for a physical device.
    pub kind: Option<String>,
}

/// Asks the kernel about `interface` in the calling thread's network namespace.
pub fn link(interface: &str) -> Result<Link, HostError> {
    let output = Command::new("ip")
        .args(["-j", "-d", "link", "show", "dev", interface])
        .output()
        .map_err(|e| HostError::Ip {
            interface: interface.to_string(),
            reason: e.to_string(),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("does not exist") {
            return Err(HostError::NoInterface(interface.to_string()));
        }
        return Err(HostError::Ip {
            interface: interface.to_string(),
            reason: format!("{}: {}", output.status, stderr.trim()),
        });
    }
    parse_link(interface, &output.stdout)
}

/// Parses `ip -j -d link show dev <interface>` (a one-element JSON array).
fn parse_link(interface: &str, json: &[u8]) -> Result<Link, HostError> {
    let bad = |attribute: &'static str, reason: String| HostError::Attribute {
        interface: interface.to_string(),
        attribute,
        reason,
    };
    let answer: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| bad("link", e.to_string()))?;
    let Some(entry) = answer.as_array().and_then(|links| links.first()) else {
        return Err(HostError::NoInterface(interface.to_string()));
    };
    let number = |attribute: &'static str| {
        entry
            .get(attribute)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| bad(attribute, "not a number".to_string()))
    };
    let ifindex = u32::try_from(number("ifindex")?).map_err(|e| bad("ifindex", e.to_string()))?;
    let mtu = u16::try_from(number("mtu")?).map_err(|e| bad("mtu", e.to_string()))?;
    let mac = entry
        .get("address")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad("address", "missing".to_string()))?
        .parse()
        .map_err(|e: xvpc_core::model::ModelError| bad("address", e.to_string()))?;
    let kind = entry
        .get("linkinfo")
        .and_then(|info| info.get("info_kind"))
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    Ok(Link {
        ifindex,
        mac,
        mtu,
        kind,
    })
}

/// The interface's MAC address.
pub fn interface_mac(interface: &str) -> Result<MacAddr, HostError> {
    link(interface).map(|l| l.mac)
}

/// The interface's MTU.
pub fn interface_mtu(interface: &str) -> Result<u16, HostError> {
    link(interface).map(|l| l.mtu)
}

/// The interface's index (the XDP fast path's redirect target).
pub fn interface_ifindex(interface: &str) -> Result<u32, HostError> {
    link(interface).map(|l| l.ifindex)
}

/// Is the interface a veth? `None` if the kernel could not be asked.
pub fn is_veth(interface: &str) -> Option<bool> {
    link(interface)
        .ok()
        .map(|l| l.kind.as_deref() == Some("veth"))
}

/// Does the interface exist here?
pub fn check_interface(interface: &str) -> Result<(), HostError> {
    link(interface).map(|_| ())
}

fn lookup_neighbour(ip: IpAddr, interface: &str) -> Option<MacAddr> {
    let output = Command::new("ip")
        .args(["neigh", "show", "to", &ip.to_string(), "dev", interface])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut words = text.split_whitespace();
    while let Some(word) = words.next() {
        if word == "lladdr" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// The next hop's MAC from the kernel's neighbour table, prodding the kernel to resolve it
/// (a datagram to the discard port) if there is no entry yet. The fabric XDP program passes
/// ARP/ND to the kernel, so the kernel can resolve it while we run.
pub fn resolve_next_hop(ip: IpAddr, interface: &str) -> Result<MacAddr, HostError> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(mac) = lookup_neighbour(ip, interface) {
            return Ok(mac);
        }
        if Instant::now() > deadline {
            return Err(HostError::Unresolved {
                ip,
                interface: interface.to_string(),
            });
        }
        let bind = match ip {
            IpAddr::V4(_) => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
            IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
        };
        if let Ok(socket) = UdpSocket::bind(bind) {
            // Best effort: the datagram only triggers neighbour resolution.
            let _ = socket.send_to(&[0], SocketAddr::new(ip, 9));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ip -j -d link show dev xg0` of a veth in a test namespace (iproute2 6.1).
    const VETH: &str = r#"[{"ifindex":2,"link_index":2,"ifname":"xg0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,"qdisc":"noqueue","operstate":"UP","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"46:1e:bd:98:96:71","broadcast":"ff:ff:ff:ff:ff:ff","link_netnsid":0,"promiscuity":0,"allmulti":0,"min_mtu":68,"max_mtu":65535,"linkinfo":{"info_kind":"veth"},"inet6_addr_gen_mode":"eui64","num_tx_queues":2,"num_rx_queues":2,"gso_max_size":65536,"gso_max_segs":65535,"tso_max_size":524280,"tso_max_segs":65535,"gro_max_size":65536}]"#;

    #[test]
    fn parses_the_kernels_answer() {
        let link = parse_link("xg0", VETH.as_bytes()).expect("parse");
        assert_eq!(link.ifindex, 2);
        assert_eq!(link.mtu, 1500);
        assert_eq!(link.mac.to_string(), "46:1e:bd:98:96:71");
        assert_eq!(link.kind.as_deref(), Some("veth"));
    }

    #[test]
    fn a_device_without_linkinfo_has_no_kind() {
        let physical = VETH.replace(r#""linkinfo":{"info_kind":"veth"},"#, "");
        let link = parse_link("xg0", physical.as_bytes()).expect("parse");
        assert_eq!(link.kind, None);
    }

    #[test]
    fn garbled_answers_are_errors_that_name_the_attribute() {
        let cases = [
            (VETH.replace(r#""mtu":1500"#, r#""mtu":70000"#), "mtu"),
            (VETH.replace(r#""ifindex":2,"#, ""), "ifindex"),
            (VETH.replace("46:1e:bd:98:96:71", "46:1e:bd"), "address"),
            ("not json".to_string(), "link"),
        ];
        for (json, attribute) in cases {
            match parse_link("xg0", json.as_bytes()) {
                Err(HostError::Attribute { attribute: a, .. }) => assert_eq!(a, attribute),
                other => panic!("{attribute}: expected an Attribute error, got {other:?}"),
            }
        }
        assert!(matches!(
            parse_link("xg0", b"[]"),
            Err(HostError::NoInterface(_))
        ));
    }
}
