//! The local time zone, for log timestamps: gunicorn writes both its
//! logs in local time with the offset, and log readers expect it. The
//! zone is read once per process (the `TZ` variable, else
//! `/etc/localtime`, else UTC). For the access log the offset is looked
//! up once per second, so a daylight-saving change shows on the first
//! line after it.

use std::cell::Cell;
use std::sync::OnceLock;

use jiff::tz::TimeZone;
use jiff::Timestamp;

#[derive(Debug)]
pub struct LocalZone {
    zone: TimeZone,
    /// The last second looked up and its offset in seconds east of UTC.
    last: Cell<Option<(u64, i32)>>,
}

/// The system's zone, read on the first call. Err says why it could not
/// be read; the logs are then in UTC (the error log's start says so).
pub fn system_zone() -> &'static Result<TimeZone, String> {
    static ZONE: OnceLock<Result<TimeZone, String>> = OnceLock::new();
    ZONE.get_or_init(|| TimeZone::try_system().map_err(|e| e.to_string()))
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

    /// Seconds east of UTC at `unix_secs`.
    pub fn offset_at(&self, unix_secs: u64) -> i32 {
        if let Some((secs, offset)) = self.last.get() {
            if secs == unix_secs {
                return offset;
            }
        }
        let offset = i64::try_from(unix_secs)
            .ok()
            .and_then(|s| Timestamp::from_second(s).ok())
            .map_or(0, |t| self.zone.to_offset(t).seconds());
        self.last.set(Some((unix_secs, offset)));
        offset
    }
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
}
