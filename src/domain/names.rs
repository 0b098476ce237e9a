//! Newtypes that parse: every identifier and bounded text the ledger stores.
//!
//! A value of one of these types is valid by construction; the limits are the ones of §2 and §8.

use std::fmt;

use uuid::Uuid;

use super::limits;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new(id: Uuid) -> $name {
                $name(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// Identifies an account within its ledger.
    AccountId
);
uuid_id!(
    /// Identifies a transfer within its ledger.
    TransferId
);
uuid_id!(
    /// Identifies a reconciliation run within its ledger.
    ReconciliationId
);
uuid_id!(
    /// Identifies a stored bank statement within its ledger.
    StatementId
);

/// Defines a string newtype whose `parse` applies one limit of `super::limits`.
macro_rules! bounded_text {
    ($(#[$doc:meta])* $name:ident, max_chars = $max:expr, check = $check:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            /// The text, or the limit it breaks (the message names the limit).
            pub fn parse(text: &str) -> Result<$name, limits::Violation> {
                $check(text)?;
                Ok($name(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

bounded_text!(
    /// A ledger's name: `^[a-z0-9][a-z0-9_-]{0,62}$` (limit `ledger_name`).
    LedgerName,
    max_chars = 63,
    check = limits::check_ledger_name
);

bounded_text!(
    /// An account's code, unique in its ledger: `^[A-Za-z0-9:_.-]{1,128}$` (limit
    /// `account_code`).
    AccountCode,
    max_chars = 128,
    check = limits::check_account_code
);

bounded_text!(
    /// A transfer's client-defined type, e.g. `card_settlement` (limit `transfer_code`).
    TransferCode,
    max_chars = 64,
    check = limits::check_transfer_code
);

bounded_text!(
    /// An external reference, used by reconciliation (limit `reference`).
    Reference,
    max_chars = 128,
    check = limits::check_reference
);

bounded_text!(
    /// A human description of a transfer (limit `description`).
    Description,
    max_chars = 512,
    check = limits::check_description
);

/// A JSON object attached to an account or transfer, opaque to the ledger: at most 4 KiB of
/// canonical JSON, 32 levels deep, numbers within ±(2^53 − 1), no NUL (the `metadata_*`
/// limits of `super::limits`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Metadata(serde_json::Map<String, serde_json::Value>);

impl Metadata {
    pub const MAX_BYTES: usize = limits::MAX_METADATA_BYTES;

    /// The object, or the limit it breaks (the message names the limit).
    pub fn parse(value: serde_json::Value) -> Result<Metadata, limits::Violation> {
        limits::check_metadata(&value)?;
        let serde_json::Value::Object(map) = value else {
            return Err(limits::Violation::new(
                &limits::METADATA_OBJECT,
                "not an object",
            ));
        };
        Ok(Metadata(map))
    }

    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }
}

/// A point in time: microseconds since the Unix epoch, UTC. The shell reads the clock; the core
/// only receives these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn from_unix_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    pub fn unix_micros(&self) -> i64 {
        self.0
    }

    pub fn plus_seconds(&self, seconds: u32) -> Timestamp {
        Timestamp(self.0.saturating_add(i64::from(seconds) * 1_000_000))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_names_follow_the_published_pattern() {
        for good in ["main", "a", "eu-west_2", "0ledger", &"a".repeat(63)] {
            assert!(LedgerName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "Main", "-x", "_x", "a b", "é", &"a".repeat(64)] {
            assert!(LedgerName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn account_codes_allow_colons_and_refuse_spaces() {
        assert!(AccountCode::parse("customer:42:wallet").is_ok());
        assert!(AccountCode::parse("customer 42").is_err());
        assert!(AccountCode::parse(&"x".repeat(129)).is_err());
    }

    #[test]
    fn free_text_refuses_control_characters_and_excess_length() {
        assert!(Reference::parse("INV-2026/11 ü").is_ok());
        assert!(Reference::parse("a\u{0}b").is_err());
        assert!(Description::parse(&"d".repeat(513)).is_err());
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(Metadata::parse(serde_json::json!({"k": [1, 2]})).is_ok());
        assert!(Metadata::parse(serde_json::json!([1])).is_err());
        let big = "x".repeat(Metadata::MAX_BYTES);
        assert!(Metadata::parse(serde_json::json!({ "k": big })).is_err());
    }
}
