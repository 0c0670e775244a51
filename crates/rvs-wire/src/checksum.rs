//! Internet checksum arithmetic (RFC 1071) and incremental updates (RFC 1624).
//!
//! Sums are carried as `u32` accumulators of 16-bit big-endian words and folded at the end.
//! A *complete* checksum field holds `!fold(sum)`; a `CHECKSUM_PARTIAL` field holds the
//! non-complemented `fold(pseudo-header sum)` and the NIC/kernel finishes it later.

/// Adds the bytes of `data` as big-endian 16-bit words to `acc` (an odd last byte is padded).
pub fn add_bytes(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    // Sum in u64 to avoid overflow for large buffers, fold at the end.
    let mut wide = acc as u64;
    for c in &mut chunks {
        wide += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [last] = chunks.remainder() {
        wide += (*last as u64) << 8;
    }
    while wide > 0xffff_ffff {
        wide = (wide & 0xffff_ffff) + (wide >> 32);
    }
    acc = wide as u32;
    acc
}

/// Ones-complement sum of `data`, not folded.
pub fn sum(data: &[u8]) -> u32 {
    add_bytes(0, data)
}

/// Folds a 32-bit accumulator into 16 bits with end-around carry.
#[inline]
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for `data` alone: `!fold(sum(data))`.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// Sum of the IPv4 pseudo header (source, destination, zero+protocol, upper-layer length).
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, length: u32) -> u32 {
    let mut acc = add_bytes(0, &src);
    acc = add_bytes(acc, &dst);
    acc += protocol as u32;
    acc += length >> 16;
    acc += length & 0xffff;
    acc
}

/// Sum of the IPv6 pseudo header (RFC 8200 section 8.1).
pub fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, length: u32) -> u32 {
    let mut acc = add_bytes(0, &src);
    acc = add_bytes(acc, &dst);
    acc += next_header as u32;
    acc += length >> 16;
    acc += length & 0xffff;
    acc
}

/// Adds `-old + new` for each 16-bit word to `acc` (`-m == !m` in ones-complement arithmetic).
#[inline(always)]
fn diff_words<const N: usize>(mut acc: u32, old: &[u8; N], new: &[u8; N]) -> u32 {
    let mut i = 0;
    while i + 1 < N {
        acc += (!u16::from_be_bytes([old[i], old[i + 1]])) as u32;
        acc += u16::from_be_bytes([new[i], new[i + 1]]) as u32;
        i += 2;
    }
    // At most 1 + 16 words of 0xffff: no overflow in u32.
    acc
}

/// RFC 1624 eqn. 3 for a complete checksum: `HC' = ~(~HC + ~m + m')` over 16-bit words.
#[inline(always)]
fn update_complete<const N: usize>(check: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    !fold(diff_words((!check) as u32, old, new))
}

/// Update for a non-complemented partial (pseudo-header) sum: `S' = S - m + m'`.
#[inline(always)]
fn update_partial<const N: usize>(field: u16, old: &[u8; N], new: &[u8; N]) -> u16 {
    fold(diff_words(field as u32, old, new))
}

/// Incremental update of a complete checksum when a 16-bit field changes.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    update_complete(check, &old.to_be_bytes(), &new.to_be_bytes())
}

/// Incremental update of a complete checksum when a 4-byte field (IPv4 address) changes.
#[inline]
pub fn update32(check: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    update_complete(check, &old, &new)
}

/// Incremental update of a complete checksum when a 16-byte field (IPv6 address) changes.
#[inline]
pub fn update128(check: u16, old: [u8; 16], new: [u8; 16]) -> u16 {
    update_complete(check, &old, &new)
}

/// Update of a `CHECKSUM_PARTIAL` pseudo-header sum when a 4-byte address changes
/// (Linux `inet_proto_csum_replace4` with `pseudohdr`): the result stays non-complemented.
#[inline]
pub fn update_partial32(field: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    update_partial(field, &old, &new)
}

/// Update of a `CHECKSUM_PARTIAL` pseudo-header sum when a 16-byte address changes.
#[inline]
pub fn update_partial128(field: u16, old: [u8; 16], new: [u8; 16]) -> u16 {
    update_partial(field, &old, &new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn incremental_matches_recompute() {
        let mut data = [
            0x45u8, 0, 0, 40, 1, 2, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = checksum(&data);
        let new = [192, 168, 7, 9];
        let old = [data[16], data[17], data[18], data[19]];
        data[16..20].copy_from_slice(&new);
        assert_eq!(update32(c, old, new), checksum(&data));
        let old_w = u16::from_be_bytes([data[8], data[9]]);
        data[8] = 63;
        let new_w = u16::from_be_bytes([data[8], data[9]]);
        assert_eq!(
            update16(
                checksum(&{
                    let mut d = data;
                    d[8] = 64;
                    d
                }),
                old_w,
                new_w
            ),
            checksum(&data)
        );
    }

    #[test]
    fn partial_update_is_uncomplemented_fold() {
        let a = [10, 0, 0, 1];
        let b = [10, 0, 0, 2];
        let c = [172, 16, 5, 4];
        let before = fold(pseudo_header_v4(a, b, 6, 20));
        let after = fold(pseudo_header_v4(a, c, 6, 20));
        assert_eq!(update_partial32(before, b, c), after);
    }

    #[test]
    fn pseudo_v6_matches_bytes() {
        let s = [1u8; 16];
        let d = [2u8; 16];
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s);
        bytes.extend_from_slice(&d);
        bytes.extend_from_slice(&100u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(fold(pseudo_header_v6(s, d, 17, 100)), fold(sum(&bytes)));
    }
}
