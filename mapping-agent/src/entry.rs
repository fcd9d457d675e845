//! Validation of mappings coming from a source: the rules that keep garbage away from the
//! dataplane, and the etcd key/value format.

use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;
use xvpc_model::{MacAddr, Mapping, MappingKey, Vni};

/// Why an entry from a source was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// An etcd key that is not `<prefix>/<vni>/<overlay_ip>`.
    #[error("key {0:?} is not <prefix>/<vni>/<overlay_ip>")]
    BadKey(String),
    /// A VNI that is not a number below 2^24.
    #[error("VNI {0:?} is not a number in 0..=16777215")]
    BadVni(String),
    /// An address that does not parse.
    #[error("{what} {value:?} is not an IP address")]
    BadIp {
        /// Which address.
        what: &'static str,
        /// The text found.
        value: String,
    },
    /// A value that is not the JSON object `{"underlay_ip": ..., "overlay_mac": ...}`.
    #[error("value is not {{\"underlay_ip\": \"...\", \"overlay_mac\": \"...\"}}: {0}")]
    BadValue(String),
    /// An address that cannot be an endpoint (unspecified, multicast, broadcast).
    #[error("{what} {ip} is not a unicast address")]
    NotUnicast {
        /// Which address.
        what: &'static str,
        /// The address.
        ip: IpAddr,
    },
    /// An underlay address of a family the fabric does not use.
    #[error("underlay address {ip} is not {family}")]
    WrongFamily {
        /// The address.
        ip: IpAddr,
        /// The configured family.
        family: &'static str,
    },
    /// A MAC that is multicast/broadcast or all-zero.
    #[error("overlay MAC {0} is not a unicast MAC")]
    BadMac(MacAddr),
}

/// Which underlay address family mappings may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnderlayFamily {
    /// IPv4 or IPv6.
    #[default]
    Any,
    /// IPv4 only.
    Ipv4,
    /// IPv6 only.
    Ipv6,
}

fn unicast(what: &'static str, ip: IpAddr) -> Result<(), EntryError> {
    let bad = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    };
    if bad {
        Err(EntryError::NotUnicast { what, ip })
    } else {
        Ok(())
    }
}

/// Checks a mapping from any source.
pub fn validate(m: &Mapping, family: UnderlayFamily) -> Result<(), EntryError> {
    unicast("overlay address", m.overlay_ip)?;
    unicast("underlay address", m.underlay_ip)?;
    match (family, m.underlay_ip) {
        (UnderlayFamily::Ipv4, IpAddr::V6(_)) => {
            return Err(EntryError::WrongFamily {
                ip: m.underlay_ip,
                family: "IPv4",
            })
        }
        (UnderlayFamily::Ipv6, IpAddr::V4(_)) => {
            return Err(EntryError::WrongFamily {
                ip: m.underlay_ip,
                family: "IPv6",
            })
        }
        _ => {}
    }
    if !m.overlay_mac.is_unicast() {
        return Err(EntryError::BadMac(m.overlay_mac));
    }
    Ok(())
}

/// The etcd key prefix with exactly one trailing slash: what is watched and loaded.
pub fn dir_prefix(prefix: &str) -> String {
    format!("{}/", prefix.trim_end_matches('/'))
}

/// The etcd key of `key` under `prefix`.
pub fn etcd_key(prefix: &str, key: &MappingKey) -> String {
    format!("{}{}/{}", dir_prefix(prefix), key.vni, key.overlay_ip)
}

/// Parses an etcd key `<prefix>/<vni>/<overlay_ip>`.
pub fn parse_etcd_key(prefix: &str, key: &[u8]) -> Result<MappingKey, EntryError> {
    let text = String::from_utf8_lossy(key);
    let bad = || EntryError::BadKey(text.to_string());
    let rest = text.strip_prefix(&dir_prefix(prefix)).ok_or_else(bad)?;
    let (vni, ip) = rest.split_once('/').ok_or_else(bad)?;
    let vni = u32::from_str(vni)
        .ok()
        .and_then(|v| Vni::new(v).ok())
        .ok_or_else(|| EntryError::BadVni(vni.to_string()))?;
    let overlay_ip = IpAddr::from_str(ip).map_err(|_| EntryError::BadIp {
        what: "overlay address",
        value: ip.to_string(),
    })?;
    Ok(MappingKey { vni, overlay_ip })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EtcdValue {
    underlay_ip: String,
    overlay_mac: String,
}

/// Parses and validates one etcd entry.
pub fn parse_etcd_entry(
    prefix: &str,
    key: &[u8],
    value: &[u8],
    family: UnderlayFamily,
) -> Result<Mapping, EntryError> {
    let k = parse_etcd_key(prefix, key)?;
    let v: EtcdValue =
        serde_json::from_slice(value).map_err(|e| EntryError::BadValue(e.to_string()))?;
    let underlay_ip = IpAddr::from_str(&v.underlay_ip).map_err(|_| EntryError::BadIp {
        what: "underlay address",
        value: v.underlay_ip.clone(),
    })?;
    let overlay_mac =
        MacAddr::from_str(&v.overlay_mac).map_err(|e| EntryError::BadValue(e.to_string()))?;
    let m = Mapping {
        vni: k.vni,
        overlay_ip: k.overlay_ip,
        underlay_ip,
        overlay_mac,
    };
    validate(&m, family)?;
    Ok(m)
}

/// The etcd value of a mapping (JSON).
pub fn etcd_value(m: &Mapping) -> String {
    format!(
        r#"{{"underlay_ip":"{}","overlay_mac":"{}"}}"#,
        m.underlay_ip, m.overlay_mac
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_round_trip_and_garbage() {
        let p = "/xvpc/m";
        let m = parse_etcd_entry(
            p,
            b"/xvpc/m/100/198.18.0.1",
            br#"{"underlay_ip":"198.19.0.1","overlay_mac":"02:00:00:00:00:01"}"#,
            UnderlayFamily::Any,
        )
        .expect("valid entry");
        assert_eq!(etcd_key(p, &m.key()), "/xvpc/m/100/198.18.0.1");
        assert_eq!(
            parse_etcd_entry(
                p,
                etcd_key(p, &m.key()).as_bytes(),
                etcd_value(&m).as_bytes(),
                UnderlayFamily::Any
            ),
            Ok(m)
        );
        let v = br#"{"underlay_ip":"198.19.0.1","overlay_mac":"02:00:00:00:00:01"}"#;
        let f = UnderlayFamily::Any;
        assert!(matches!(
            parse_etcd_entry(p, b"/xvpc/m/16777216/198.18.0.1", v, f),
            Err(EntryError::BadVni(_))
        ));
        assert!(matches!(
            parse_etcd_entry(p, b"/xvpc/m2/1/198.18.0.1", v, f),
            Err(EntryError::BadKey(_))
        ));
        assert!(matches!(
            parse_etcd_entry(p, b"/xvpc/m/1", v, f),
            Err(EntryError::BadKey(_))
        ));
        assert!(matches!(
            parse_etcd_entry(p, b"/xvpc/m/1/nope", v, f),
            Err(EntryError::BadIp { .. })
        ));
        assert!(matches!(
            parse_etcd_entry(p, b"/xvpc/m/1/198.18.0.1", b"{", f),
            Err(EntryError::BadValue(_))
        ));
        let mcast = br#"{"underlay_ip":"198.19.0.1","overlay_mac":"01:00:5e:00:00:01"}"#;
        assert!(matches!(
            parse_etcd_entry(p, b"/xvpc/m/1/198.18.0.1", mcast, f),
            Err(EntryError::BadMac(_))
        ));
        let v6 = br#"{"underlay_ip":"2001:2::1","overlay_mac":"02:00:00:00:00:01"}"#;
        assert!(parse_etcd_entry(p, b"/xvpc/m/1/198.18.0.1", v6, f).is_ok());
        assert!(matches!(
            parse_etcd_entry(p, b"/xvpc/m/1/198.18.0.1", v6, UnderlayFamily::Ipv4),
            Err(EntryError::WrongFamily { .. })
        ));
        let mc_ip = br#"{"underlay_ip":"224.0.0.1","overlay_mac":"02:00:00:00:00:01"}"#;
        assert!(matches!(
            parse_etcd_entry(p, b"/xvpc/m/1/198.18.0.1", mc_ip, f),
            Err(EntryError::NotUnicast { .. })
        ));
    }
}
