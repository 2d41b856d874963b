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

/// RFC 3339 text as the `time` crate writes it (`2026-11-24T10:15:30.1234Z`:
/// UTC, the fraction without trailing zeros and left out when zero), for
/// years 0000 to 9999, built on the stack. Formatting through `time` went
/// via a calendar date and a heap `String`, once per timestamp of every
/// event an answer shows.
struct Rfc3339Text {
    bytes: [u8; 27],
    length: usize,
}

impl Rfc3339Text {
    fn of(instant: Timestamp) -> Option<Rfc3339Text> {
        let (year, month, day) = civil_from_days(instant.day_index());
        if !(0..=9999).contains(&year) {
            return None;
        }
        let micros_of_day = instant.0.rem_euclid(MICROS_PER_DAY);
        let seconds_of_day = micros_of_day / MICROS_PER_SECOND;
        let mut bytes = *b"0000-00-00T00:00:00.000000Z";
        write_digits(&mut bytes[0..4], year);
        write_digits(&mut bytes[5..7], month);
        write_digits(&mut bytes[8..10], day);
        write_digits(&mut bytes[11..13], seconds_of_day / 3600);
        write_digits(&mut bytes[14..16], seconds_of_day / 60 % 60);
        write_digits(&mut bytes[17..19], seconds_of_day % 60);
        let mut fraction = micros_of_day % MICROS_PER_SECOND;
        let length = if fraction == 0 {
            bytes[19] = b'Z';
            20
        } else {
            write_digits(&mut bytes[20..26], fraction);
            let mut end = 26;
            while fraction % 10 == 0 {
                fraction /= 10;
                end -= 1;
            }
            bytes[end] = b'Z';
            end + 1
        };
        Some(Rfc3339Text { bytes, length })
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and separators are written.
        std::str::from_utf8(&self.bytes[..self.length]).unwrap_or("")
    }
}

/// Fills `into` with the last decimal digits of `value` (non-negative).
fn write_digits(into: &mut [u8], mut value: i64) {
    for digit in into.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian (year, month, day) of a day counted from
/// 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 timestamp")]
pub struct InvalidTimestamp {
    pub text: String,
}

impl fmt::Display for Timestamp {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Rfc3339Text::of(*self) {
            Some(text) => formatter.write_str(text.as_str()),
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
        let text = Rfc3339Text::of(*self)
            .ok_or_else(|| serde::ser::Error::custom("timestamp outside the RFC 3339 range"))?;
        serializer.serialize_str(text.as_str())
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

    /// What `time` writes, the reference the hand-written text must match.
    fn formatted_by_time(instant: Timestamp) -> Option<String> {
        instant
            .to_offset_date_time()
            .and_then(|instant| instant.format(&Rfc3339).ok())
    }

    #[test]
    fn text_matches_the_time_crate_at_the_edges() {
        let edges = [
            0,
            -1,
            1,
            999_999,
            1_000_000,
            100_000,
            120_000,
            MICROS_PER_DAY - 1,
            951_782_400 * MICROS_PER_SECOND,     // 2000-02-29
            -62_167_219_200 * MICROS_PER_SECOND, // 0000-01-01
            -62_167_219_200 * MICROS_PER_SECOND - 1,
            253_402_300_799 * MICROS_PER_SECOND + 999_999, // 9999-12-31T23:59:59.999999
            253_402_300_800 * MICROS_PER_SECOND,
            i64::MAX,
            i64::MIN,
        ];
        for micros in edges {
            let instant = Timestamp(micros);
            assert_eq!(
                Rfc3339Text::of(instant).map(|text| text.as_str().to_owned()),
                formatted_by_time(instant),
                "{micros}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn text_matches_the_time_crate(
            micros in -62_167_219_200_000_000_i64..253_402_300_800_000_000,
            round_to in proptest::sample::select(vec![1_i64, 10, 1_000, 1_000_000]),
        ) {
            let instant = Timestamp(micros - micros.rem_euclid(round_to));
            let text = Rfc3339Text::of(instant).map(|text| text.as_str().to_owned());
            proptest::prop_assert_eq!(&text, &formatted_by_time(instant));
            let parsed = text.as_deref().map(Timestamp::parse_rfc3339);
            proptest::prop_assert_eq!(parsed, Some(Ok(instant)));
        }
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
