//! Seeded, stateless hashing: every generated value is a pure function of (seed, index, salt).

/// SplitMix64 finaliser: a cheap, well-mixed 64-bit hash.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of a (seed, index, salt) triple.
pub(crate) fn h3(seed: u64, index: u64, salt: u64) -> u64 {
    mix(mix(seed ^ mix(salt)) ^ index)
}

/// A 48-bit UUID tail that is unique per `n` (XOR with a constant is a bijection) but does
/// not look sequential.
pub(crate) fn unique_tail(seed: u64, salt: u64, n: u64) -> u64 {
    n ^ (h3(seed, u64::MAX, salt) & 0xFFFF_FFFF_FFFF)
}

/// A uniform float in `[0, 1)` from a hash.
pub(crate) fn unit(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_hex(dst: &mut [u8], value: u64) {
    let n = dst.len();
    for (k, slot) in dst.iter_mut().enumerate() {
        *slot = HEX[((value >> ((n - 1 - k) * 4)) & 0xF) as usize];
    }
}

/// Writes a version-4-shaped UUID (`8-4-4-4-12` lowercase hex). The last 12 digits are `tail`
/// (masked to 48 bits), so callers can make ids unique by construction.
pub(crate) fn push_uuid(out: &mut Vec<u8>, high: u64, tail: u64) {
    let mut b = *b"00000000-0000-4000-8000-000000000000";
    put_hex(&mut b[0..8], high >> 32);
    put_hex(&mut b[9..13], (high >> 16) & 0xFFFF);
    put_hex(&mut b[15..18], high & 0xFFF);
    put_hex(&mut b[19..23], 0x8000 | ((high >> 12) & 0x3FFF));
    put_hex(&mut b[24..36], tail & 0xFFFF_FFFF_FFFF);
    out.extend_from_slice(&b);
}

/// A UUID-shaped string from two hashes.
pub(crate) fn uuid_string(high: u64, tail: u64) -> String {
    let mut out = Vec::with_capacity(36);
    push_uuid(&mut out, high, tail);
    String::from_utf8(out).expect("hex is ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_canonical_shape() {
        let id = uuid_string(mix(1), 42);
        assert_eq!(id.len(), 36);
        let dashes: Vec<usize> = id.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, vec![8, 13, 18, 23]);
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn unit_stays_in_range() {
        for i in 0..10_000 {
            let u = unit(h3(7, i, 3));
            assert!((0.0..1.0).contains(&u));
        }
    }
}
