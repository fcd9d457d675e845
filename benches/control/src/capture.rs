//! Sees VXLAN packets arrive at a remote host: an `AF_PACKET` socket opened inside the
//! remote's namespace, and a parser that recognises the encapsulated frames of one overlay
//! destination.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    recv, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType,
};
use nix::sys::time::{TimeVal, TimeValLike};

/// Errors of the capture socket.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The packet socket could not be opened (needs CAP_NET_RAW).
    #[error("cannot open an AF_PACKET socket (needs root / CAP_NET_RAW): {0}")]
    Open(nix::Error),
    /// Setting the receive timeout failed.
    #[error("cannot set the capture socket's receive timeout: {0}")]
    Timeout(nix::Error),
    /// Receiving failed for another reason than the timeout.
    #[error("capture receive failed: {0}")]
    Recv(nix::Error),
}

/// A packet socket receiving every frame of the namespace it was opened in.
pub struct RawCapture {
    fd: OwnedFd,
}

impl RawCapture {
    /// Open it in the calling thread's network namespace; `recv` waits at most `timeout`.
    pub fn open(timeout: Duration) -> Result<RawCapture, CaptureError> {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::EthAll,
        )
        .map_err(CaptureError::Open)?;
        let tv = TimeVal::microseconds(timeout.as_micros().min(i64::MAX as u128) as i64);
        setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(CaptureError::Timeout)?;
        Ok(RawCapture { fd })
    }

    /// One frame into `buf`; `Ok(None)` when the timeout passed without one.
    pub fn recv(&self, buf: &mut [u8]) -> Result<Option<usize>, CaptureError> {
        match recv(self.fd.as_raw_fd(), buf, MsgFlags::empty()) {
            Ok(n) => Ok(Some(n)),
            Err(nix::Error::EAGAIN | nix::Error::EINTR) => Ok(None),
            Err(e) => Err(CaptureError::Recv(e)),
        }
    }
}

/// The inner IPv4 destination of an Ethernet + IPv4 + UDP(4789) + VXLAN frame whose outer
/// destination is `outer_dst`; `None` for anything else.
pub fn vxlan_inner_ipv4_dst(frame: &[u8], outer_dst: Ipv4Addr) -> Option<Ipv4Addr> {
    const ETH: usize = 14;
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(ETH..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || ihl < 20 || *ip.get(9)? != 17 {
        return None;
    }
    if ip.get(16..20)? != outer_dst.octets() {
        return None;
    }
    let udp = ip.get(ihl..)?;
    if udp.get(2..4)? != 4789u16.to_be_bytes() {
        return None;
    }
    // UDP 8 + VXLAN 8, then the inner Ethernet frame.
    let inner = udp.get(16..)?;
    if inner.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let dst: [u8; 4] = inner.get(ETH + 16..ETH + 20)?.try_into().ok()?;
    Some(Ipv4Addr::from(dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vxlan_frame(outer_dst: [u8; 4], inner_dst: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 8 + 14 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[14 + 16..14 + 20].copy_from_slice(&outer_dst);
        f[34 + 2..34 + 4].copy_from_slice(&4789u16.to_be_bytes());
        f[50 + 12..50 + 14].copy_from_slice(&[0x08, 0x00]);
        f[50 + 14] = 0x45;
        f[50 + 14 + 16..50 + 14 + 20].copy_from_slice(&inner_dst);
        f
    }

    #[test]
    fn recognises_our_vxlan_frames_only() {
        let outer = Ipv4Addr::new(198, 18, 1, 2);
        let f = vxlan_frame(outer.octets(), [198, 18, 10, 200]);
        assert_eq!(
            vxlan_inner_ipv4_dst(&f, outer),
            Some(Ipv4Addr::new(198, 18, 10, 200))
        );
        assert_eq!(vxlan_inner_ipv4_dst(&f, Ipv4Addr::new(198, 18, 2, 2)), None);
        // Every cut before the end of the inner destination address.
        for cut in 0..50 + 14 + 20 {
            assert_eq!(vxlan_inner_ipv4_dst(&f[..cut], outer), None, "cut {cut}");
        }
        let mut other_port = f.clone();
        other_port[36..38].copy_from_slice(&53u16.to_be_bytes());
        assert_eq!(vxlan_inner_ipv4_dst(&other_port, outer), None);
        let mut tcp = f;
        tcp[23] = 6;
        assert_eq!(vxlan_inner_ipv4_dst(&tcp, outer), None);
    }
}
