//! Deterministic synthetic mapping sets, and their file-source (TOML) and etcd encodings.
//!
//! Every address is in the benchmarking ranges: overlay addresses in `2001:2:0:1::/64`
//! (RFC 5180), underlay addresses in `198.19.0.0/16` (RFC 2544). No traffic is ever sent to
//! these underlays by the full-sync benchmark; they only fill tables.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use xvpc_core::model::{MacAddr, Mapping, Vni};

/// Errors building a synthetic mapping set.
#[derive(Debug, thiserror::Error)]
pub enum MappingsError {
    /// More mappings than the synthetic address plan holds.
    #[error("{0} mappings requested; the synthetic plan holds at most 16777215")]
    TooMany(usize),
    /// The VNI does not fit in 24 bits.
    #[error("VNI {0} does not fit in 24 bits")]
    BadVni(u32),
}

/// The largest synthetic set (MAC and address plans use 24 bits of the index).
pub const MAX_MAPPINGS: usize = 0x00FF_FFFF;

/// Mapping number `i` (0-based) of VNI `vni`: overlay `2001:2:0:1::<i+1>`, underlay
/// `198.19.<hi>.<lo>` (never .0 or .255), MAC `02:00:<i as 24 bits>`.
pub fn synthetic(vni: Vni, i: u32) -> Mapping {
    let n = i + 1;
    let overlay = Ipv6Addr::new(0x2001, 2, 0, 1, 0, 0, (n >> 16) as u16, n as u16);
    let host = i % (254 * 256);
    let underlay = Ipv4Addr::new(198, 19, (host / 254) as u8, (host % 254 + 1) as u8);
    Mapping {
        vni,
        overlay_ip: IpAddr::V6(overlay),
        underlay_ip: IpAddr::V4(underlay),
        overlay_mac: MacAddr([0x02, 0, (n >> 16) as u8, (n >> 8) as u8, n as u8, 0x01]),
    }
}

/// The first `n` synthetic mappings of `vni` (all keys distinct).
pub fn generate(vni: u32, n: usize) -> Result<Vec<Mapping>, MappingsError> {
    if n > MAX_MAPPINGS {
        return Err(MappingsError::TooMany(n));
    }
    let vni = Vni::new(vni).map_err(|_| MappingsError::BadVni(vni))?;
    // `n <= MAX_MAPPINGS < u32::MAX`, checked above.
    Ok((0..n as u32).map(|i| synthetic(vni, i)).collect())
}

/// The mapping agent's file-source format (`[[mapping]]` tables).
pub fn to_toml(mappings: &[Mapping]) -> String {
    let mut out = String::with_capacity(mappings.len() * 120);
    for m in mappings {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "[[mapping]]\nvni = {}\noverlay_ip = \"{}\"\nunderlay_ip = \"{}\"\noverlay_mac = \"{}\"\n\n",
            m.vni, m.overlay_ip, m.underlay_ip, m.overlay_mac
        );
    }
    out
}

/// The etcd key of a mapping under `prefix` (`<prefix>/<vni>/<overlay_ip>`).
pub fn etcd_key(prefix: &str, m: &Mapping) -> String {
    format!("{prefix}/{}/{}", m.vni, m.overlay_ip)
}

/// The etcd value of a mapping (JSON with `underlay_ip` and `overlay_mac`).
pub fn etcd_value(m: &Mapping) -> String {
    format!(
        "{{\"underlay_ip\":\"{}\",\"overlay_mac\":\"{}\"}}",
        m.underlay_ip, m.overlay_mac
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_are_distinct_and_addresses_in_benchmark_ranges() {
        let set = generate(100, 70_000).expect("within the plan");
        let keys: HashSet<_> = set.iter().map(Mapping::key).collect();
        assert_eq!(keys.len(), 70_000);
        for m in &set {
            match (m.overlay_ip, m.underlay_ip) {
                (IpAddr::V6(o), IpAddr::V4(u)) => {
                    assert_eq!(o.segments()[..4], [0x2001, 2, 0, 1]);
                    assert_eq!(u.octets()[..2], [198, 19]);
                    assert!(u.octets()[3] != 0 && u.octets()[3] != 255, "{u}");
                }
                other => panic!("unexpected families {other:?}"),
            }
            assert!(m.overlay_mac.is_unicast());
        }
    }

    #[test]
    fn refuses_oversized_sets_and_bad_vnis() {
        assert!(matches!(
            generate(100, MAX_MAPPINGS + 1),
            Err(MappingsError::TooMany(_))
        ));
        assert!(matches!(
            generate(1 << 24, 1),
            Err(MappingsError::BadVni(_))
        ));
    }

    #[test]
    fn toml_and_etcd_encodings() {
        let set = generate(100, 2).expect("within the plan");
        let text = to_toml(&set);
        assert_eq!(
            text.lines().take(5).collect::<Vec<_>>(),
            [
                "[[mapping]]",
                "vni = 100",
                "overlay_ip = \"2001:2:0:1::1\"",
                "underlay_ip = \"198.19.0.1\"",
                "overlay_mac = \"02:00:00:00:01:01\""
            ]
        );
        assert_eq!(text.matches("[[mapping]]").count(), 2);
        assert_eq!(
            etcd_key("/xvpc/mappings", &set[1]),
            "/xvpc/mappings/100/2001:2:0:1::2"
        );
        assert_eq!(
            etcd_value(&set[1]),
            "{\"underlay_ip\":\"198.19.0.2\",\"overlay_mac\":\"02:00:00:00:02:01\"}"
        );
    }
}
