//! The local time zone's offset from UTC, for access-log timestamps:
//! gunicorn writes `%(t)s` in local time, and log readers expect it.
//! The zone is read once at start (the `TZ` variable, else
//! `/etc/localtime`, else UTC) and the offset looked up once per second,
//! so a daylight-saving change shows on the first line after it.

use std::cell::Cell;

use jiff::tz::TimeZone;
use jiff::Timestamp;

#[derive(Debug)]
pub struct LocalZone {
    zone: TimeZone,
    /// The last second looked up and its offset in seconds east of UTC.
    last: Cell<Option<(u64, i32)>>,
}

impl LocalZone {
    /// The system's zone; UTC when it cannot be determined.
    pub fn system() -> LocalZone {
        let zone = TimeZone::try_system().unwrap_or_else(|e| {
            log::warn!("local time zone unknown ({e}); access-log times are in UTC");
            TimeZone::UTC
        });
        LocalZone::new(zone)
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
