//! A half-open time interval `[start, end)`, written `START/END` in ISO-8601.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::error::Error;

/// A half-open interval `[start, end)` at millisecond precision, in UTC.
///
/// A conversation belongs to the interval when its `conversationStart` is in it, so splitting
/// an interval at any instant gives parts whose results add up to exactly the whole.
/// On the wire it is `"2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    start: OffsetDateTime,
    end: OffsetDateTime,
}

impl Interval {
    /// `[start, end)`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `start` is not before `end`, or either has sub-millisecond digits
    /// (the API's precision is the millisecond).
    pub fn new(start: OffsetDateTime, end: OffsetDateTime) -> Result<Self, Error> {
        for t in [start, end] {
            if !t.nanosecond().is_multiple_of(1_000_000) {
                return Err(Error::config(format!(
                    "interval instant {} has sub-millisecond precision",
                    format_instant(t)
                )));
            }
        }
        if start >= end {
            return Err(Error::config(format!(
                "interval start {} is not before its end {}",
                format_instant(start),
                format_instant(end)
            )));
        }
        Ok(Self {
            start: start.to_offset(UtcOffset::UTC),
            end: end.to_offset(UtcOffset::UTC),
        })
    }

    /// The interval of length `length` ending now (truncated to the millisecond).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `length` is zero or too large.
    pub fn since(length: Duration) -> Result<Self, Error> {
        Self::ending_at(OffsetDateTime::now_utc(), length)
    }

    /// The interval of length `length` ending at `end` (truncated to the millisecond).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `length` is zero or too large.
    pub fn ending_at(end: OffsetDateTime, length: Duration) -> Result<Self, Error> {
        let end = truncate_ms(end);
        let length = time::Duration::try_from(length)
            .map_err(|_| Error::config("interval length is too large"))?;
        let start = end
            .checked_sub(length)
            .ok_or_else(|| Error::config("interval length is too large"))?;
        Self::new(truncate_ms(start), end)
    }

    /// The first instant in the interval.
    pub fn start(&self) -> OffsetDateTime {
        self.start
    }

    /// The first instant after the interval.
    pub fn end(&self) -> OffsetDateTime {
        self.end
    }

    /// The length of the interval.
    pub fn duration(&self) -> Duration {
        (self.end - self.start).unsigned_abs()
    }

    /// Whether `t` is in `[start, end)`.
    pub fn contains(&self, t: OffsetDateTime) -> bool {
        self.start <= t && t < self.end
    }

    /// Whether `other` lies entirely within this interval.
    pub fn covers(&self, other: &Interval) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Splits into `[start, at)` and `[at, end)`; `None` unless `start < at < end`.
    pub fn split_at(&self, at: OffsetDateTime) -> Option<(Interval, Interval)> {
        let at = truncate_ms(at);
        if at <= self.start || at >= self.end {
            return None;
        }
        Some((
            Interval {
                start: self.start,
                end: at,
            },
            Interval {
                start: at,
                end: self.end,
            },
        ))
    }

    /// Splits at the millisecond nearest the middle; `None` for a 1 ms interval.
    pub fn halves(&self) -> Option<(Interval, Interval)> {
        let ms = (self.end - self.start).whole_milliseconds();
        self.split_at(self.start + time::Duration::milliseconds((ms / 2) as i64))
    }

    /// `[start, end)` with `start` replaced (used to resume after a part).
    pub(crate) fn with_start(&self, start: OffsetDateTime) -> Option<Interval> {
        (start < self.end).then_some(Interval {
            start,
            end: self.end,
        })
    }
}

const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

const WIRE: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

fn format_instant(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC)
        .format(WIRE)
        .unwrap_or_else(|_| t.to_string())
}

fn truncate_ms(t: OffsetDateTime) -> OffsetDateTime {
    let ns = t.nanosecond();
    t.replace_nanosecond(ns - ns % 1_000_000).unwrap_or(t)
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            format_instant(self.start),
            format_instant(self.end)
        )
    }
}

impl FromStr for Interval {
    type Err = Error;

    /// Parses `START/END`, each an RFC 3339 date-time with an offset
    /// (`2024-01-01T00:00:00Z`, `2024-01-01T01:00:00.250+01:00`) or a date, meaning midnight
    /// UTC (`2024-01-01`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let (a, b) = s
            .trim()
            .split_once('/')
            .ok_or_else(|| Error::config(format!("interval {s:?} is not START/END (ISO-8601)")))?;
        let parse = |part: &str, which: &str| {
            let part = part.trim();
            if let Ok(date) = time::Date::parse(part, DATE) {
                return Ok(date.midnight().assume_utc());
            }
            OffsetDateTime::parse(part, &Rfc3339).map_err(|e| {
                Error::config(format!(
                    "interval {which} {part:?} is not an ISO-8601 date (UTC midnight) or date-time with offset: {e}"
                ))
            })
        };
        Interval::new(parse(a, "start")?, parse(b, "end")?)
    }
}

impl Serialize for Interval {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn parses_start_slash_end_and_formats_utc_millis() {
        let i: Interval = "2024-01-01T00:00:00Z/2024-01-02T01:00:00.250+01:00"
            .parse()
            .unwrap();
        assert_eq!(i.start(), datetime!(2024-01-01 0:00 UTC));
        assert_eq!(i.end(), datetime!(2024-01-02 0:00:00.250 UTC));
        assert_eq!(
            i.to_string(),
            "2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.250Z"
        );
        assert_eq!(i.to_string().parse::<Interval>().unwrap(), i);
    }

    #[test]
    fn bad_intervals_are_config_errors_that_say_why() {
        for (s, needle) in [
            ("2024-01-01T00:00:00Z", "START/END"),
            ("2024-01-01T00:00/2024-01-02", "start"),
            ("2024-13-01/2024-01-02", "start"),
            ("2024-01-01T00:00:00Z/yesterday", "end"),
            ("2024-01-02T00:00:00Z/2024-01-01T00:00:00Z", "not before"),
            ("2024-01-01T00:00:00Z/2024-01-01T00:00:00Z", "not before"),
            (
                "2024-01-01T00:00:00.0001Z/2024-01-02T00:00:00Z",
                "sub-millisecond",
            ),
        ] {
            let err = s.parse::<Interval>().unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{s}");
            assert!(err.to_string().contains(needle), "{s}: {err}");
        }
    }

    #[test]
    fn dates_mean_utc_midnight() {
        let i: Interval = "2024-01-01/2024-01-02T12:00:00Z".parse().unwrap();
        assert_eq!(i.start(), datetime!(2024-01-01 0:00 UTC));
        assert_eq!(i.duration(), Duration::from_secs(36 * 3600));
    }

    #[test]
    fn since_ends_now_and_has_the_length() {
        let end = datetime!(2024-03-01 12:00:00.123456 UTC);
        let i = Interval::ending_at(end, Duration::from_secs(86_400)).unwrap();
        assert_eq!(i.end(), datetime!(2024-03-01 12:00:00.123 UTC));
        assert_eq!(i.start(), datetime!(2024-02-29 12:00:00.123 UTC));
        assert!(Interval::since(Duration::ZERO).is_err());
        let now = Interval::since(Duration::from_secs(60)).unwrap();
        assert_eq!(now.duration(), Duration::from_secs(60));
    }

    #[test]
    fn halves_are_adjacent_and_stop_at_one_millisecond() {
        let i: Interval = "2024-01-01T00:00:00Z/2024-01-01T00:00:00.003Z"
            .parse()
            .unwrap();
        let (a, b) = i.halves().unwrap();
        assert_eq!(a.start(), i.start());
        assert_eq!(a.end(), b.start());
        assert_eq!(b.end(), i.end());
        assert_eq!(a.duration(), Duration::from_millis(1));
        assert!(a.halves().is_none());
        assert!(b.halves().is_some());
    }

    #[test]
    fn serde_is_the_wire_string() {
        let i: Interval = "2024-01-01T00:00:00Z/2024-01-02T00:00:00Z".parse().unwrap();
        let json = serde_json::to_string(&i).unwrap();
        assert_eq!(
            json,
            r#""2024-01-01T00:00:00.000Z/2024-01-02T00:00:00.000Z""#
        );
        assert_eq!(serde_json::from_str::<Interval>(&json).unwrap(), i);
        assert!(serde_json::from_str::<Interval>(r#""nope""#).is_err());
    }
}
