//! Facts about this host's interfaces that the config may leave out: MAC, MTU, and the
//! fabric next hop's MAC from the kernel's neighbour table.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use xvpc_core::model::MacAddr;

/// Why an interface fact could not be learned.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The interface does not exist in this network namespace.
    #[error("interface {0} does not exist in this network namespace")]
    NoInterface(String),
    /// A sysfs attribute could not be read or parsed.
    #[error("cannot read {path}: {reason}")]
    Sysfs {
        /// The attribute.
        path: String,
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

fn sysfs(interface: &str, attribute: &str) -> Result<String, HostError> {
    let dir = format!("/sys/class/net/{interface}");
    if !Path::new(&dir).exists() {
        return Err(HostError::NoInterface(interface.to_string()));
    }
    let path = format!("{dir}/{attribute}");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|e| HostError::Sysfs {
            path,
            reason: e.to_string(),
        })
}

/// The interface's MAC address.
pub fn interface_mac(interface: &str) -> Result<MacAddr, HostError> {
    let text = sysfs(interface, "address")?;
    text.parse()
        .map_err(|e: xvpc_core::model::ModelError| HostError::Sysfs {
            path: format!("/sys/class/net/{interface}/address"),
            reason: e.to_string(),
        })
}

/// The interface's MTU.
pub fn interface_mtu(interface: &str) -> Result<u16, HostError> {
    let text = sysfs(interface, "mtu")?;
    text.parse()
        .map_err(|e: std::num::ParseIntError| HostError::Sysfs {
            path: format!("/sys/class/net/{interface}/mtu"),
            reason: e.to_string(),
        })
}

/// The interface's index (the XDP fast path's redirect target).
pub fn interface_ifindex(interface: &str) -> Result<u32, HostError> {
    let text = sysfs(interface, "ifindex")?;
    text.parse()
        .map_err(|e: std::num::ParseIntError| HostError::Sysfs {
            path: format!("/sys/class/net/{interface}/ifindex"),
            reason: e.to_string(),
        })
}

/// Is the interface a veth (`ip -d link` names the kind)? `None` if `ip` could not tell.
pub fn is_veth(interface: &str) -> Option<bool> {
    let output = Command::new("ip")
        .args(["-d", "-o", "link", "show", "dev", interface])
        .output()
        .ok()?;
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .any(|w| w == "veth")
    })
}

/// Does the interface exist here?
pub fn check_interface(interface: &str) -> Result<(), HostError> {
    sysfs(interface, "ifindex").map(|_| ())
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
