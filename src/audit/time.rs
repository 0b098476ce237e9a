//! `at` in the journal: RFC 3339, UTC, exactly six fractional digits, `Z` (§5).

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::domain::Timestamp;

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

pub fn format_timestamp(at: Timestamp) -> String {
    to_offset_date_time(at)
        .format(FORMAT)
        .expect("every representable timestamp formats")
}

/// Parses exactly the form `format_timestamp` writes; anything else is `None`.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let parsed = PrimitiveDateTime::parse(text, FORMAT).ok()?.assume_utc();
    let at = from_offset_date_time(parsed)?;
    (format_timestamp(at) == text).then_some(at)
}

pub fn to_offset_date_time(at: Timestamp) -> OffsetDateTime {
    let nanos = i128::from(at.unix_micros()) * 1000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(UtcOffset::UTC)
}

pub fn from_offset_date_time(value: OffsetDateTime) -> Option<Timestamp> {
    let micros = i64::try_from(value.unix_timestamp_nanos() / 1000).ok()?;
    Some(Timestamp::from_unix_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_with_microseconds_in_utc() {
        let at = Timestamp::from_unix_micros(1_795_000_000_123_456);
        let text = format_timestamp(at);
        assert_eq!(text, "2026-11-18T11:06:40.123456Z");
        assert_eq!(parse_timestamp(&text), Some(at));
    }

    #[test]
    fn other_forms_of_the_same_instant_are_refused() {
        assert_eq!(parse_timestamp("2026-11-18T08:26:40.123Z"), None);
        assert_eq!(parse_timestamp("2026-11-18T08:26:40.123456+00:00"), None);
        assert_eq!(parse_timestamp("2026-11-18 08:26:40.123456Z"), None);
    }
}
