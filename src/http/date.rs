//! The Date header value (IMF-fixdate, RFC 9110 section 5.6.7), formatted at
//! most once per second.

use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) const IMF_FIXDATE_LEN: usize = 29;

#[derive(Debug)]
pub(crate) struct DateCache {
    /// The second `bytes` was formatted for (u64::MAX: never).
    secs: u64,
    bytes: [u8; IMF_FIXDATE_LEN],
}

impl Default for DateCache {
    fn default() -> Self {
        Self::new()
    }
}

impl DateCache {
    pub fn new() -> Self {
        DateCache {
            secs: u64::MAX,
            bytes: [b' '; IMF_FIXDATE_LEN],
        }
    }

    /// The current date, re-formatted only when the second has changed.
    pub fn now(&mut self) -> &[u8] {
        // A clock before 1970 is a broken host; 1970 is as good as any.
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.at(secs)
    }

    /// The date for `secs`, re-formatted only when it differs from the last.
    pub fn at(&mut self, secs: u64) -> &[u8] {
        if secs != self.secs {
            self.bytes = format_imf_fixdate(secs);
            self.secs = secs;
        }
        &self.bytes
    }
}

/// Last second representable with a 4-digit year: 9999-12-31T23:59:59Z.
const MAX_SECS: u64 = 253_402_300_799;

/// (year, month 1-12, day 1-31) for days since 1970-01-01; Howard Hinnant's
/// `civil_from_days`, which is exact over the proleptic Gregorian calendar.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub(crate) fn put_digits(out: &mut [u8], mut n: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Formats seconds since the Unix epoch as an IMF-fixdate.
/// Times past the year 9999 are clamped to its last second.
pub(crate) fn format_imf_fixdate(unix_secs: u64) -> [u8; IMF_FIXDATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let secs = unix_secs.min(MAX_SECS);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days as i64);

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    // 1970-01-01 was a Thursday, hence DAYS starting there.
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    put_digits(&mut out[5..7], u64::from(day));
    out[8..11].copy_from_slice(MONTHS[(month as usize).clamp(1, 12) - 1]);
    put_digits(&mut out[12..16], year.max(0) as u64);
    put_digits(&mut out[17..19], rem / 3600);
    put_digits(&mut out[20..22], rem / 60 % 60);
    put_digits(&mut out[23..25], rem % 60);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(secs: u64) -> String {
        String::from_utf8(format_imf_fixdate(secs).to_vec()).unwrap()
    }

    #[test]
    fn known_dates() {
        assert_eq!(fmt(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(fmt(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(fmt(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(fmt(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
        assert_eq!(fmt(4_107_542_399), "Sun, 28 Feb 2100 23:59:59 GMT");
        assert_eq!(fmt(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
        assert_eq!(fmt(1_234_567_890), "Fri, 13 Feb 2009 23:31:30 GMT");
        assert_eq!(fmt(2_147_483_647), "Tue, 19 Jan 2038 03:14:07 GMT");
        assert_eq!(fmt(MAX_SECS), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(fmt(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn every_day_for_decades_is_well_formed_and_consecutive() {
        let mut prev_day = None;
        for d in 0..(60 * 366) {
            let s = fmt(d * 86_400 + 43_200);
            assert_eq!(s.len(), IMF_FIXDATE_LEN);
            assert!(s.ends_with(" 12:00:00 GMT"), "{s}");
            let day: u32 = s[5..7].parse().unwrap();
            if let Some(p) = prev_day {
                assert!(day == p + 1 || day == 1, "{s} after day {p}");
            }
            prev_day = Some(day);
        }
    }

    #[test]
    fn cache_reformats_only_on_change() {
        let mut c = DateCache::new();
        assert_eq!(c.at(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(c.at(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(c.at(1), b"Thu, 01 Jan 1970 00:00:01 GMT");
        let now = c.now().to_vec();
        assert_eq!(now.len(), IMF_FIXDATE_LEN);
        assert!(now.ends_with(b" GMT"));
    }
}
