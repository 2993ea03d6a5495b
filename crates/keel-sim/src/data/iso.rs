//! Fast ISO-8601 UTC timestamps with milliseconds (`2026-01-01T00:00:00.000Z`), as Genesys writes them.

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe as i64 + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn put2(dst: &mut [u8], v: u32) {
    dst[0] = b'0' + (v / 10) as u8;
    dst[1] = b'0' + (v % 10) as u8;
}

/// Appends `"YYYY-MM-DDTHH:MM:SS.mmmZ"` (with the quotes) for a Unix time in milliseconds.
pub(crate) fn push_quoted(out: &mut Vec<u8>, unix_ms: i64) {
    out.push(b'"');
    push(out, unix_ms);
    out.push(b'"');
}

/// Appends `YYYY-MM-DDTHH:MM:SS.mmmZ` for a Unix time in milliseconds (years 0..=9999).
pub(crate) fn push(out: &mut Vec<u8>, unix_ms: i64) {
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let days = unix_ms.div_euclid(86_400_000);
    let ms = unix_ms.rem_euclid(86_400_000) as u32;
    let (y, m, d) = civil_from_days(days);
    let y = y.clamp(0, 9999) as u32;
    put2(&mut b[0..2], y / 100);
    put2(&mut b[2..4], y % 100);
    put2(&mut b[5..7], m);
    put2(&mut b[8..10], d);
    let secs = ms / 1000;
    put2(&mut b[11..13], secs / 3600);
    put2(&mut b[14..16], (secs / 60) % 60);
    put2(&mut b[17..19], secs % 60);
    let milli = ms % 1000;
    b[20] = b'0' + (milli / 100) as u8;
    put2(&mut b[21..23], milli % 100);
    out.extend_from_slice(&b);
}

/// A timestamp as a `String`.
pub(crate) fn format(unix_ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    push(&mut out, unix_ms);
    String::from_utf8(out).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    #[test]
    fn matches_the_time_crate_across_centuries() {
        let mut t: i64 = -2_208_988_800_000; // 1900
        while t < 4_102_444_800_000 {
            let ours = format(t);
            let theirs = OffsetDateTime::parse(&ours, &Rfc3339).unwrap();
            assert_eq!(
                (theirs.unix_timestamp_nanos() / 1_000_000) as i64,
                t,
                "{ours}"
            );
            t += 86_400_000 * 37 + 3_723_456;
        }
        assert_eq!(format(1_767_225_600_000), "2026-01-01T00:00:00.000Z");
        assert_eq!(format(951_782_400_123), "2000-02-29T00:00:00.123Z");
    }
}
