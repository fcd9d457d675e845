//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Partial sums are `u32` values already folded to at most `0xFFFF`, so callers can add up to
//! 65 537 of them without overflowing before calling [`fold`] or [`finish`].

use std::net::{Ipv4Addr, Ipv6Addr};

/// Fold a 64-bit accumulator to 16 bits with end-around carry (2^32 ≡ 2^16 ≡ 1 mod 0xFFFF).
#[inline]
fn fold64(mut acc: u64) -> u32 {
    while acc > 0xFFFF {
        acc = (acc & 0xFFFF) + (acc >> 16);
    }
    acc as u32
}

/// The ones'-complement sum of `data` as big-endian 16-bit words, an odd trailing byte padded
/// with zero. The result is folded to at most `0xFFFF`.
///
/// Summed in little-endian 64-bit words with end-around carry and byte-swapped once at the
/// end: the ones'-complement sum is byte-order independent (RFC 1071 section 2(B)), and
/// 2^64 - 1 is a multiple of 2^16 - 1, so a sum of 64-bit words folds to the same 16 bits.
/// Four independent add-with-carry chains keep several adders busy: for a 1400-byte frame over
/// an IPv6 underlay, 23% fewer instructions per packet than 32-bit words into one 64-bit sum
/// (docs/PERFORMANCE.md).
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
            *lane = add_with_carry(*lane, u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
        }
    }
    let mut words = blocks.remainder().chunks_exact(8);
    for word in &mut words {
        lanes[0] = add_with_carry(
            lanes[0],
            u64::from_le_bytes(word.try_into().unwrap_or([0; 8])),
        );
    }
    let mut acc: u64 = lanes.iter().map(|&l| (l >> 32) + (l & 0xFFFF_FFFF)).sum();
    let mut pairs = words.remainder().chunks_exact(2);
    for p in &mut pairs {
        acc += u64::from(u16::from_le_bytes([p[0], p[1]]));
    }
    // A trailing byte is the high half of its big-endian word: the low half in native order.
    if let [last] = pairs.remainder() {
        acc += u64::from(*last);
    }
    u32::from((fold64(acc) as u16).swap_bytes())
}

/// `a + b` with the carry out added back in (ones'-complement addition of 64-bit words).
#[inline(always)]
fn add_with_carry(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    sum + u64::from(carry)
}

/// Fold carries of a sum into 16 bits (NOT complemented).
#[inline]
pub fn fold(sum: u32) -> u16 {
    fold64(u64::from(sum)) as u16
}

/// The checksum to write into a header: the complement of the folded sum.
#[inline]
pub fn finish(sum: u32) -> u16 {
    !fold(sum)
}

/// The partial sum of the IPv4 pseudo-header (RFC 768, RFC 793): addresses, protocol and the
/// upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u32) -> u32 {
    let acc = u64::from(u32::from(src) >> 16)
        + u64::from(u32::from(src) & 0xFFFF)
        + u64::from(u32::from(dst) >> 16)
        + u64::from(u32::from(dst) & 0xFFFF)
        + u64::from(protocol)
        + u64::from(length >> 16)
        + u64::from(length & 0xFFFF);
    fold64(acc)
}

/// The partial sum of the IPv6 pseudo-header (RFC 8200 section 8.1).
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, length: u32) -> u32 {
    let acc = u64::from(sum(&src.octets()))
        + u64::from(sum(&dst.octets()))
        + u64::from(next_header)
        + u64::from(length >> 16)
        + u64::from(length & 0xFFFF);
    fold64(acc)
}

/// The checksum after one 16-bit word of the covered data changed from `old` to `new`
/// (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`), which never yields `0x0000` from a
/// non-zero-sum header the way eqn. 2 can.
#[inline]
pub fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

/// The checksum after a 32-bit, 16-bit-aligned value (an IPv4 address) of the covered data
/// changed from `old` to `new`.
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let acc = u32::from(!checksum)
        + u32::from(!(old >> 16) as u16)
        + u32::from(!(old as u16))
        + (new >> 16)
        + (new & 0xFFFF);
    !fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A straightforward reference: 16-bit words one by one, carries folded at the end.
    fn reference(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        for (i, b) in data.iter().enumerate() {
            acc += if i % 2 == 0 {
                u64::from(*b) << 8
            } else {
                u64::from(*b)
            };
        }
        while acc > 0xFFFF {
            acc = (acc & 0xFFFF) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(finish(sum(&data)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
        assert_eq!(fold(sum(&[])), 0);
    }

    #[test]
    fn rfc1624_examples() {
        // RFC 1624 section 4: HC = 0xDD2F, m = 0x5555 changes to m' = 0x3285; eqn. 3 gives
        // 0x0000 where eqn. 2 would give the wrong 0xFFFF.
        assert_eq!(update_u16(0xDD2F, 0x5555, 0x3285), 0x0000);
        // Section 3: the sum of the header words is 0xCD7A before the change, so a change back
        // restores the checksum.
        assert_eq!(update_u16(0x0000, 0x3285, 0x5555), 0xDD2F);
    }

    #[test]
    fn ipv4_header_known_checksum() {
        // An IPv4 header whose checksum (0xad9e) scapy computed.
        let hdr = [
            0x45, 0x00, 0x00, 0x26, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc6, 0x12,
            0x00, 0x01, 0xc6, 0x13, 0x01, 0x02,
        ];
        assert_eq!(finish(sum(&hdr)), 0xad9e);
    }

    #[test]
    fn pseudo_headers_match_explicit_bytes() {
        let (s4, d4) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 19, 1, 2));
        let mut ph = [0u8; 12];
        ph[0..4].copy_from_slice(&s4.octets());
        ph[4..8].copy_from_slice(&d4.octets());
        ph[9] = 17;
        ph[10..12].copy_from_slice(&18u16.to_be_bytes());
        assert_eq!(fold(pseudo_header_v4(s4, d4, 17, 18)), fold(sum(&ph)));

        let s6: Ipv6Addr = "2001:2::1".parse().expect("literal");
        let d6: Ipv6Addr = "2001:2:0:1::2".parse().expect("literal");
        let mut ph = [0u8; 40];
        ph[0..16].copy_from_slice(&s6.octets());
        ph[16..32].copy_from_slice(&d6.octets());
        ph[32..36].copy_from_slice(&70_000u32.to_be_bytes());
        ph[39] = 58;
        assert_eq!(fold(pseudo_header_v6(&s6, &d6, 58, 70_000)), fold(sum(&ph)));
    }

    proptest! {
        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..1600)) {
            prop_assert_eq!(finish(sum(&data)), reference(&data));
        }

        /// Bytes near 0x00 and 0xFF: every 64-bit lane carries out, which random bytes
        /// rarely exercise.
        #[test]
        fn sum_with_carries_matches_reference(
            data in proptest::collection::vec(prop_oneof![Just(0xFFu8), Just(0xFE), Just(0x00), Just(0x01)], 0..300),
        ) {
            prop_assert_eq!(finish(sum(&data)), reference(&data));
        }

        #[test]
        fn sums_can_be_split_at_even_offsets(
            data in proptest::collection::vec(any::<u8>(), 0..512),
            cut in 0usize..256,
        ) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(finish(sum(a) + sum(b)), finish(sum(&data)));
        }

        #[test]
        fn incremental_u16_matches_full(
            mut data in proptest::collection::vec(any::<u8>(), 2..128),
            word in 0usize..64,
            new in any::<u16>(),
        ) {
            let words = data.len() / 2;
            let at = (word % words) * 2;
            let before = finish(sum(&data));
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
            let after = finish(sum(&data));
            // Ones' complement has two zeros; eqn. 3 and a full recomputation agree except
            // that both encodings of zero are valid results.
            let incremental = update_u16(before, old, new);
            prop_assert!(
                incremental % 0xFFFF == after % 0xFFFF,
                "incremental {incremental:#06x} full {after:#06x}"
            );
        }

        #[test]
        fn incremental_u32_matches_full(
            mut data in proptest::collection::vec(any::<u8>(), 4..128),
            word in 0usize..64,
            new in any::<u32>(),
        ) {
            let words = data.len() / 2 - 1;
            let at = (word % words) * 2;
            let before = finish(sum(&data));
            let old = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
            data[at..at + 4].copy_from_slice(&new.to_be_bytes());
            let after = finish(sum(&data));
            let incremental = update_u32(before, old, new);
            prop_assert!(
                incremental % 0xFFFF == after % 0xFFFF,
                "incremental {incremental:#06x} full {after:#06x}"
            );
        }
    }
}
