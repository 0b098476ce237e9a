//! The time of the offline tests (`tests/model.rs`, `tests/verify.rs`): `at(seconds)` is that
//! many seconds after 2030-03-17T17:46:40Z (10^15 µs after 2000-01-09), so that every test
//! states its times in one unit from one origin. (`tests/audit_format.rs` has its own origin and
//! unit, `at_micros`: its worked example is fixed byte for byte by docs/AUDIT_FORMAT.md.)

use ledger::domain::Timestamp;

/// The origin of test times, in µs since the Unix epoch.
pub const ORIGIN_MICROS: i64 = 1_900_000_000_000_000;

/// `seconds` after the origin of test times.
pub fn at(seconds: i64) -> Timestamp {
    Timestamp::from_unix_micros(ORIGIN_MICROS + seconds * 1_000_000)
}
