//! The contents the `crashloop` guest writes, computed the same way by the
//! guest and by the tests that check what survived a crash or a load run.

/// splitmix64.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The bytes of kind `kind` (1 volume slot, 2 dict value, 3 load file)
/// that writer `w` writes in iteration `i`: a header naming them, then
/// pseudo-random bytes. Volume slots are up to 32 KiB, one in 16 up to
/// 1 MiB (so a kill lands inside a large write too); dict values up to
/// 16 KiB; load files up to 4 KiB.
pub fn content(kind: u64, w: u32, i: u64) -> Vec<u8> {
    let seed = splitmix(kind.wrapping_mul(0x1_0000_0001) ^ (u64::from(w) << 40) ^ i);
    let max: u64 = match kind {
        1 if seed.is_multiple_of(16) => 1 << 20,
        1 => 32 << 10,
        2 => 16 << 10,
        _ => 4 << 10,
    };
    let len = usize::try_from((seed >> 8) % max).unwrap_or(0);
    let mut out = format!("{kind} w{w} i{i}\n").into_bytes();
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}
