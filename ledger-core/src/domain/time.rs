//! Time as the domain sees it: an instant handed in by the writer, never read
//! from a clock here.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const MICROS_PER_SECOND: i64 = 1_000_000;
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// Microseconds since the Unix epoch, UTC. Serialised as RFC 3339.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const EPOCH: Timestamp = Timestamp(0);

    pub fn from_unix_seconds(seconds: i64) -> Timestamp {
        Timestamp(seconds.saturating_mul(MICROS_PER_SECOND))
    }

    pub fn unix_micros(self) -> i64 {
        self.0
    }

    pub fn plus_seconds(self, seconds: u64) -> Timestamp {
        let micros = i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(MICROS_PER_SECOND);
        Timestamp(self.0.saturating_add(micros))
    }

    pub fn plus_days(self, days: u32) -> Timestamp {
        Timestamp(self.0.saturating_add(i64::from(days) * MICROS_PER_DAY))
    }

    pub fn minus_seconds(self, seconds: u64) -> Timestamp {
        let micros = i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(MICROS_PER_SECOND);
        Timestamp(self.0.saturating_sub(micros))
    }

    /// Days since the epoch (UTC calendar days).
    pub fn day_index(self) -> i64 {
        self.0.div_euclid(MICROS_PER_DAY)
    }

    /// Minutes since midnight UTC, 0..1440.
    pub fn minute_of_day(self) -> u32 {
        // rem_euclid of a day in micros is below 86_400_000_000, so the
        // minute count fits in u32.
        (self.0.rem_euclid(MICROS_PER_DAY) / (60 * MICROS_PER_SECOND)) as u32
    }

    /// ISO weekday, Monday = 1 .. Sunday = 7. 1970-01-01 was a Thursday.
    pub fn iso_weekday(self) -> u8 {
        ((self.day_index() + 3).rem_euclid(7) + 1) as u8
    }

    pub fn to_offset_date_time(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1000).ok()
    }

    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, InvalidTimestamp> {
        let parsed = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| InvalidTimestamp {
            text: text.to_owned(),
        })?;
        let micros = parsed.unix_timestamp_nanos() / 1000;
        i64::try_from(micros)
            .map(Timestamp)
            .map_err(|_| InvalidTimestamp {
                text: text.to_owned(),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 timestamp")]
pub struct InvalidTimestamp {
    pub text: String,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self
            .to_offset_date_time()
            .and_then(|instant| instant.format(&Rfc3339).ok())
        {
            Some(text) => formatter.write_str(&text),
            None => write!(formatter, "@{}us", self.0),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Timestamp({self})")
    }
}

/// RFC 3339 text in human-readable formats (JSON: events, the API);
/// microseconds as an integer in binary ones (snapshots).
impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            return serializer.serialize_i64(self.0);
        }
        let text = self
            .to_offset_date_time()
            .and_then(|instant| instant.format(&Rfc3339).ok())
            .ok_or_else(|| serde::ser::Error::custom("timestamp outside the RFC 3339 range"))?;
        serializer.serialize_str(&text)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            return i64::deserialize(deserializer).map(Timestamp);
        }
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(feature = "schemas")]
string_schema!(Timestamp, { "format": "date-time", "description": "RFC 3339, UTC, microsecond precision" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip_keeps_microseconds() {
        let instant = Timestamp::parse_rfc3339("2026-11-24T10:15:30.123456Z").expect("valid");
        let text = serde_json::to_string(&instant).expect("serialises");
        assert_eq!(text, "\"2026-11-24T10:15:30.123456Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&text).ok(), Some(instant));
    }

    #[test]
    fn calendar_helpers() {
        let instant = Timestamp::parse_rfc3339("2026-11-24T10:15:00Z").expect("valid");
        assert_eq!(instant.iso_weekday(), 2, "2026-11-24 is a Tuesday");
        assert_eq!(instant.minute_of_day(), 10 * 60 + 15);
        assert_eq!(Timestamp::EPOCH.iso_weekday(), 4);
        assert_eq!(Timestamp(-1).day_index(), -1);
    }

    #[test]
    fn refuses_non_rfc3339() {
        assert!(Timestamp::parse_rfc3339("2026-11-24").is_err());
        assert!(serde_json::from_str::<Timestamp>("12").is_err());
    }
}
