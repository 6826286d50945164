//! The local time zone, for log timestamps: gunicorn writes both its
//! logs in local time with the offset, and log readers expect it. The
//! zone is read once per process (the `TZ` variable, else
//! `/etc/localtime`, else UTC). For the access log the offset is looked
//! up once per second, so a daylight-saving change shows on the first
//! line after it.

use std::cell::Cell;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::http::date::civil_from_days;

#[derive(Debug)]
pub struct LocalZone {
    zone: TimeZone,
    /// The last second looked up and its offset in seconds east of UTC.
    last: Cell<Option<(u64, i32)>>,
}

/// A moment as a local clock shows it, for the log formats to print.
#[derive(Debug, PartialEq, Eq)]
pub struct Clock {
    pub year: u64,
    pub month: u32,
    pub day: u32,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
    /// '+' or '-': the offset's direction from UTC.
    pub offset_sign: char,
    /// Whole hours of the offset.
    pub offset_hours: u64,
    /// Minutes of the offset past its hours.
    pub offset_minutes: u64,
}

impl Clock {
    /// `unix_secs` on a clock `utc_offset` seconds east of UTC. Offsets
    /// are kept under a day (jiff's are within +-25:59:59 anyway) and
    /// years to four digits, 9999-12-31 23:59:59 at most.
    pub fn at(unix_secs: u64, utc_offset: i32) -> Clock {
        let offset = utc_offset.clamp(-86_399, 86_399);
        let local = unix_secs
            .saturating_add_signed(i64::from(offset))
            .min(253_402_300_799);
        let (year, month, day) = civil_from_days((local / 86_400) as i64);
        let secs = local % 86_400;
        let offset_minutes = u64::from(offset.unsigned_abs()) / 60;
        Clock {
            year: year.unsigned_abs(),
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            offset_sign: if offset < 0 { '-' } else { '+' },
            offset_hours: offset_minutes / 60,
            offset_minutes: offset_minutes % 60,
        }
    }
}

/// Where zone files are when `TZDIR` does not say, as for glibc.
const ZONEINFO: &str = "/usr/share/zoneinfo";

/// The system's zone, read on the first call. Err says why it could not
/// be read; the logs are then in UTC (the error log's start says so).
pub fn system_zone() -> &'static Result<TimeZone, String> {
    static ZONE: OnceLock<Result<TimeZone, String>> = OnceLock::new();
    ZONE.get_or_init(|| {
        zone_from(
            std::env::var_os("TZ").as_deref(),
            std::env::var_os("TZDIR").as_deref(),
        )
    })
}

/// The zone that glibc's `localtime` would use for these `TZ` and `TZDIR`
/// values. Done here rather than through jiff's `TimeZone::try_system`,
/// which first indexes the whole zoneinfo directory: a walk of some 1,800
/// files at start and about 150 KiB of heap for the life of every process.
fn zone_from(tz: Option<&OsStr>, tzdir: Option<&OsStr>) -> Result<TimeZone, String> {
    let Some(tz) = tz else {
        return read_tzif(Path::new("/etc/localtime"));
    };
    let tz = tz
        .to_str()
        .ok_or_else(|| format!("TZ={tz:?} is not UTF-8"))?;
    // An empty TZ means UTC to glibc and the BSDs alike.
    if tz.is_empty() {
        return Ok(TimeZone::UTC);
    }
    // A leading ':' marks a file or zone name; without it, a POSIX rule
    // such as `EST5EDT,M3.2.0,M11.1.0` comes first.
    let name = match tz.strip_prefix(':') {
        Some(name) => name,
        None => match TimeZone::posix(tz) {
            Ok(zone) => return Ok(zone),
            Err(_) => tz,
        },
    };
    let path = if name.starts_with('/') {
        PathBuf::from(name)
    } else {
        Path::new(tzdir.unwrap_or(OsStr::new(ZONEINFO))).join(name)
    };
    read_tzif(&path).map_err(|e| format!("TZ={tz:?}: {e}"))
}

fn read_tzif(path: &Path) -> Result<TimeZone, String> {
    let shown = path.display();
    let data = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
    TimeZone::tzif(&path.to_string_lossy(), &data).map_err(|e| format!("{shown}: {e}"))
}

impl LocalZone {
    /// The system's zone; UTC when it cannot be determined.
    pub fn system() -> LocalZone {
        LocalZone::new(system_zone().clone().unwrap_or(TimeZone::UTC))
    }

    pub fn new(zone: TimeZone) -> LocalZone {
        LocalZone {
            zone,
            last: Cell::new(None),
        }
    }

    /// Seconds east of UTC at `unix_secs`; the answer for the last second
    /// asked is kept (the lookup itself is [`zone_offset`]).
    pub fn offset_at(&self, unix_secs: u64) -> i32 {
        if let Some((secs, offset)) = self.last.get() {
            if secs == unix_secs {
                return offset;
            }
        }
        let offset = zone_offset(&self.zone, unix_secs);
        self.last.set(Some((unix_secs, offset)));
        offset
    }
}

/// Seconds east of UTC in `zone` at `unix_secs`. Only infallible jiff
/// calls here: an `unwrap` inside jiff's civil-time conversions would link
/// in the `Debug` code of all its error kinds (~70 KiB, resident in every
/// process).
pub fn zone_offset(zone: &TimeZone, unix_secs: u64) -> i32 {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .map_or(0, |t| zone.to_offset(t).seconds())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_the_zone_and_its_rules() {
        let utc = LocalZone::new(TimeZone::UTC);
        assert_eq!(utc.offset_at(1_700_000_000), 0);
        let india = LocalZone::new(TimeZone::posix("IST-5:30").unwrap());
        assert_eq!(india.offset_at(1_700_000_000), 5 * 3600 + 1800);
        // US Eastern: EST in January, EDT in July.
        let east = LocalZone::new(TimeZone::posix("EST5EDT,M3.2.0,M11.1.0").unwrap());
        assert_eq!(east.offset_at(1_767_225_600), -5 * 3600); // 2026-01-01
        assert_eq!(east.offset_at(1_782_864_000), -4 * 3600); // 2026-07-01

        // The cache answers for the same second only.
        assert_eq!(east.offset_at(1_767_225_600), -5 * 3600);
    }

    /// A TZif file (version 1) with one local time type, `offset` seconds
    /// east of UTC, as zic writes for a zone without transitions.
    fn tzif_fixed(offset: i32) -> Vec<u8> {
        let mut data = b"TZif".to_vec();
        data.extend_from_slice(&[0; 16]); // version 1, then reserved
                                          // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
        for count in [0u32, 0, 0, 0, 1, 4] {
            data.extend_from_slice(&count.to_be_bytes());
        }
        data.extend_from_slice(&offset.to_be_bytes());
        data.extend_from_slice(&[0, 0]); // not DST, designation at 0
        data.extend_from_slice(b"ABC\0");
        data
    }

    fn offset_of(zone: Result<TimeZone, String>) -> i32 {
        let zone = zone.unwrap_or_else(|e| panic!("{e}"));
        LocalZone::new(zone).offset_at(1_700_000_000)
    }

    #[test]
    fn tz_is_read_as_glibc_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("Asia")).unwrap();
        std::fs::write(dir.path().join("Asia/Plus4"), tzif_fixed(4 * 3600)).unwrap();
        let tzdir = Some(dir.path().as_os_str());
        let tz = |s: &str| zone_from(Some(OsStr::new(s)), tzdir);

        assert_eq!(offset_of(tz("")), 0);
        assert_eq!(offset_of(tz("IST-5:30")), 5 * 3600 + 1800);
        // Names and paths are files; ':' says so explicitly.
        assert_eq!(offset_of(tz("Asia/Plus4")), 4 * 3600);
        assert_eq!(offset_of(tz(":Asia/Plus4")), 4 * 3600);
        let path = dir.path().join("Asia/Plus4");
        assert_eq!(offset_of(tz(path.to_str().unwrap())), 4 * 3600);
        // What cannot be read says what it tried.
        let err = tz("Asia/Nowhere").unwrap_err();
        assert!(err.contains("Asia/Nowhere"), "{err}");
        assert!(tz(":IST-5:30").is_err());
    }
}
