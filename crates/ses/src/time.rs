//! Calendar UTC from Unix milliseconds: RFC 3339 for replies and logs. Pure arithmetic (the wasm32 clock traps and the Workers runtime has no formatter
//! we can reach from here); the time is always passed in.

/// A Unix millisecond as a UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    year: i64,
    month: i64,
    day: i64,
    second_of_day: u64,
    millisecond: u64,
}

impl UtcTime {
    pub fn from_unix_ms(ms: u64) -> UtcTime {
        let secs = ms / 1000;
        let days = (secs / 86_400) as i64;
        // Howard Hinnant's civil-from-days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            second_of_day: secs % 86_400,
            millisecond: ms % 1000,
        }
    }

    /// `2026-11-26T10:00:00.000Z`.
    pub fn rfc3339(&self) -> String {
        let (h, m, s) = self.clock();
        format!(
            "{:04}-{:02}-{:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
            self.year, self.month, self.day, self.millisecond
        )
    }

    fn clock(&self) -> (u64, u64, u64) {
        let t = self.second_of_day;
        (t / 3600, (t % 3600) / 60, t % 60)
    }
}

/// `ms` since the Unix epoch as RFC 3339 UTC with milliseconds (`2026-11-26T10:06:23.431Z`), the
/// one timestamp format of replies, events and logs.
pub fn rfc3339_utc(ms: u64) -> String {
    UtcTime::from_unix_ms(ms).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epoch_a_leap_day_and_a_millisecond_before_midnight_format_exactly() {
        assert_eq!(
            UtcTime::from_unix_ms(0).rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
        // 2024-02-29T12:34:56.789Z
        let leap = UtcTime::from_unix_ms(1_709_210_096_789);
        assert_eq!(leap.rfc3339(), "2024-02-29T12:34:56.789Z");
        let last = UtcTime::from_unix_ms(1_796_169_599_999);
        assert_eq!(last.rfc3339(), "2026-12-01T23:59:59.999Z");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_utc(1_795_687_583_431), "2026-11-26T10:06:23.431Z");
        assert_eq!(rfc3339_utc(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }
}
