//! Byte sizes on the command line: `1048576`, `512KiB`, `10GiB`, `1.5GB`.
//!
//! A number alone is bytes. `KiB`, `MiB`, `GiB`, `TiB` (and `K`, `M`, `G`,
//! `T`, as `du -h` prints them) are powers of 1024; `KB`, `MB`, `GB`, `TB`
//! powers of 1000; `B` is bytes. Units are case-insensitive and may follow
//! a space. A fraction is allowed with a unit and rounded down to a byte.

/// Parses a size for clap: the message names what was wrong, and clap adds
/// the flag it was given to.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let scale: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (a number of bytes, or one with KiB, MiB, \
                 GiB, TiB, KB, MB, GB or TB)"
            ));
        }
    };
    let bad = || format!("{text:?} is not a size (a number of bytes, or e.g. 512MiB, 10GiB)");
    if number.is_empty() {
        return Err(bad());
    }
    let bytes = match number.split_once('.') {
        None => number
            .parse::<u64>()
            .map_err(|_| bad())?
            .checked_mul(scale)
            .ok_or_else(|| format!("{text:?} is more bytes than a 64-bit count holds"))?,
        Some(_) if scale == 1 => return Err(format!("{text:?}: bytes are whole")),
        Some((whole, frac)) => {
            if frac.is_empty() || frac.contains('.') || frac.len() > 9 {
                return Err(bad());
            }
            let whole: u64 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| bad())?
            };
            let digits: u64 = frac.parse().map_err(|_| bad())?;
            let denom = 10u64.pow(u32::try_from(frac.len()).map_err(|_| bad())?);
            // scale ≤ 2^40 and digits < 10^9 < 2^30: no overflow in u128.
            let part = u128::from(digits) * u128::from(scale) / u128::from(denom);
            whole
                .checked_mul(scale)
                .and_then(|w| w.checked_add(u64::try_from(part).ok()?))
                .ok_or_else(|| format!("{text:?} is more bytes than a 64-bit count holds"))?
        }
    };
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_and_decimal_units() {
        assert_eq!(parse_size("0").unwrap(), 0);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("10GiB").unwrap(), 10 << 30);
        assert_eq!(parse_size("10 gib").unwrap(), 10 << 30);
        assert_eq!(parse_size("512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("3MB").unwrap(), 3_000_000);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("0.5KB").unwrap(), 500);
        assert_eq!(parse_size("7B").unwrap(), 7);
        for bad in ["", "GiB", "ten", "1.5", "1..5GiB", "-1", "5XB", "1.GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse_size("20000000TiB").unwrap_err().contains("64-bit"));
        assert!(parse_size("5XB").unwrap_err().contains("unknown unit"));
    }
}
