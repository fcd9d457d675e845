//! The correctness check's verdict on the frames tshark dissected (pure; the capture itself is
//! in [`crate::harness`]).
//!
//! Egress: outer 198.19.0.1 -> 198.19.0.2 port 4789, VNI 100, inner 198.18.1.2 -> 198.18.2.2
//! to the remote overlay MAC, inner frame length = size. Plain forwarders: the frame exactly as
//! sent. Ingress: the inner frame to the guest's MAC. Every UDP checksum tshark verified is
//! good.
use crate::csv::Check;
use crate::options::{Dir, System};
use crate::topo::{GUEST_MAC, GW_MAC, PEER_FAB_MAC, REMOTE_OVL_MAC, VNI};

/// The tshark fields of one frame, `|`-separated, in the order the check asks for them.
pub const TSHARK_FIELDS: &[&str] = &[
    "frame.len",
    "eth.dst",
    "ip.src",
    "ip.dst",
    "udp.dstport",
    "vxlan.vni",
    "udp.checksum.status",
];

/// Does this system encapsulate in this direction (the frame leaves as VXLAN)?
pub fn encapsulates(sys: System, dir: Dir) -> bool {
    dir == Dir::Egress && !sys.is_plain()
}

/// The expected fields of every frame, all but the checksum status.
pub fn expected(sys: System, dir: Dir, size: u16) -> String {
    if encapsulates(sys, dir) {
        format!(
            "{}|{PEER_FAB_MAC},{REMOTE_OVL_MAC}|198.19.0.1,198.18.1.2|198.19.0.2,198.18.2.2|4789,9|{VNI}",
            u32::from(size) + 50
        )
    } else if dir == Dir::Egress {
        format!("{size}|{GW_MAC}|198.18.1.2|198.18.2.2|9|")
    } else {
        format!("{size}|{GUEST_MAC}|198.18.2.2|198.18.1.2|9|")
    }
}

/// Offset of the generator's marker in a captured frame: right after the innermost UDP header.
pub fn marker_offset(sys: System, dir: Dir) -> u32 {
    if encapsulates(sys, dir) {
        92
    } else {
        42
    }
}

/// Judges tshark's output (one line per frame); `log` gets bench.sh's messages. The marker
/// check (pcap_marker.py) comes on top of an `Ok`.
pub fn judge(label: &str, rows: &str, want: &str, mut log: impl FnMut(String)) -> Check {
    let lines: Vec<&str> = rows.lines().filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        log(format!("check {label}: nothing captured"));
        return Check::NothingCaptured;
    }
    for line in &lines {
        let (head, status) = line.rsplit_once('|').unwrap_or(("", line));
        if head != want {
            log(format!("check {label}: got  {line} / want {want}|..."));
            return Check::Fail;
        }
        // Status 0 = bad; the zero outer VXLAN checksum is "not present" (2).
        if status.split(',').any(|s| s == "0") {
            log(format!("check {label}: bad UDP checksum: {line}"));
            return Check::Fail;
        }
    }
    Check::Ok(lines.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EGRESS: &str = "114|02:00:00:00:0f:02,02:00:00:00:02:02|198.19.0.1,198.18.1.2|198.19.0.2,198.18.2.2|4789,9|100|2,1";

    #[test]
    fn expected_headers() {
        assert_eq!(
            expected(System::Xvpc, Dir::Egress, 64),
            EGRESS.rsplit_once('|').expect("a status field").0
        );
        assert_eq!(
            expected(System::Testpmd, Dir::Egress, 64),
            "64|02:00:00:00:01:01|198.18.1.2|198.18.2.2|9|"
        );
        assert_eq!(
            expected(System::Ovs, Dir::Ingress, 128),
            "128|02:00:00:00:01:02|198.18.2.2|198.18.1.2|9|"
        );
        assert_eq!(marker_offset(System::KernelVxlan, Dir::Egress), 92);
        assert_eq!(marker_offset(System::XdpRedirect, Dir::Egress), 42);
        assert_eq!(marker_offset(System::Xvpc, Dir::Ingress), 42);
    }

    #[test]
    fn verdicts() {
        let want = expected(System::Xvpc, Dir::Egress, 64);
        let mut logs = vec![];
        let rows = format!("{EGRESS}\n{EGRESS}\n\n");
        assert_eq!(judge("x", &rows, &want, |l| logs.push(l)), Check::Ok(2));
        assert!(logs.is_empty());

        assert_eq!(
            judge("x", "\n", &want, |l| logs.push(l)),
            Check::NothingCaptured
        );
        assert_eq!(logs.pop().expect("a log line"), "check x: nothing captured");

        let wrong_vni = EGRESS.replace("|100|", "|101|");
        assert_eq!(
            judge("x", &format!("{EGRESS}\n{wrong_vni}"), &want, |l| logs
                .push(l)),
            Check::Fail
        );
        assert!(logs
            .pop()
            .expect("a log line")
            .starts_with("check x: got  114|"));

        let bad_sum = EGRESS.replace("|2,1", "|2,0");
        assert_eq!(judge("x", &bad_sum, &want, |l| logs.push(l)), Check::Fail);
        assert!(logs
            .pop()
            .expect("a log line")
            .starts_with("check x: bad UDP checksum"));
        // "10" is not a bad status.
        assert_eq!(
            judge("x", &EGRESS.replace("|2,1", "|2,10"), &want, |_| {}),
            Check::Ok(1)
        );
    }
}
