//! Journal events and the hash chain (§5): `hash = SHA-256(JCS(event without hash))`, and each
//! event's `prev_hash` is the previous event's `hash`.

use serde_json::{Map, Value};

use super::codec::encode_data;
use super::hash::Hash32;
use super::jcs;
use super::time::{format_timestamp, parse_timestamp};
use crate::domain::{AppliedEvent, LedgerName, Timestamp};

/// Who caused an event and under which request (§5): the key id, never a client string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    pub actor: String,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
}

impl Provenance {
    /// The actor of events the service causes by itself (expiry).
    pub const SYSTEM_ACTOR: &'static str = "system";

    pub fn system() -> Provenance {
        Provenance {
            actor: Self::SYSTEM_ACTOR.to_owned(),
            request_id: None,
            idempotency_key: None,
        }
    }
}

/// One event of a ledger's journal, exactly as hashed, stored and exported.
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEvent {
    pub ledger: String,
    pub seq: u64,
    pub event_type: String,
    pub at: Timestamp,
    pub actor: String,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub data: Value,
    pub prev_hash: Hash32,
    pub hash: Hash32,
}

impl JournalEvent {
    /// The event as a JSON object, without `hash`: what is canonicalised and hashed.
    pub fn body(&self) -> Map<String, Value> {
        let optional = |text: &Option<String>| text.clone().map_or(Value::Null, Value::String);
        let mut body = Map::new();
        body.insert("ledger".into(), Value::String(self.ledger.clone()));
        body.insert("seq".into(), Value::from(self.seq));
        body.insert("type".into(), Value::String(self.event_type.clone()));
        body.insert("at".into(), Value::String(format_timestamp(self.at)));
        body.insert("actor".into(), Value::String(self.actor.clone()));
        body.insert("request_id".into(), optional(&self.request_id));
        body.insert("idempotency_key".into(), optional(&self.idempotency_key));
        body.insert("data".into(), self.data.clone());
        body.insert("prev_hash".into(), Value::String(self.prev_hash.to_hex()));
        body
    }

    /// RFC 8785 canonical bytes of the body: `JCS(Value::Object(self.body()))`, written without
    /// building the object (this is hashed for every event sealed, exported and verified).
    pub fn canonical_body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        out.push(b'{');
        // The keys in RFC 8785 order (all ASCII: byte order).
        jcs::write_key("actor", true, &mut out);
        jcs::write_string(&self.actor, &mut out);
        jcs::write_key("at", false, &mut out);
        jcs::write_string(&format_timestamp(self.at), &mut out);
        jcs::write_key("data", false, &mut out);
        jcs::write_canonical_json(&self.data, &mut out);
        jcs::write_key("idempotency_key", false, &mut out);
        jcs::write_optional_string(self.idempotency_key.as_deref(), &mut out);
        jcs::write_key("ledger", false, &mut out);
        jcs::write_string(&self.ledger, &mut out);
        jcs::write_key("prev_hash", false, &mut out);
        jcs::write_string(&self.prev_hash.to_hex(), &mut out);
        jcs::write_key("request_id", false, &mut out);
        jcs::write_optional_string(self.request_id.as_deref(), &mut out);
        jcs::write_key("seq", false, &mut out);
        jcs::write_canonical_json(&Value::from(self.seq), &mut out);
        jcs::write_key("type", false, &mut out);
        jcs::write_string(&self.event_type, &mut out);
        out.push(b'}');
        out
    }

    pub fn computed_hash(&self) -> Hash32 {
        Hash32::sha256(&self.canonical_body())
    }

    /// The event with its hash, as one JSON object.
    pub fn to_json(&self) -> Value {
        let mut object = self.body();
        object.insert("hash".into(), Value::String(self.hash.to_hex()));
        Value::Object(object)
    }

    /// Reads an event written by `to_json`. The hash is taken as written: checking it is the
    /// chain's business.
    pub fn from_json(value: &Value) -> Result<JournalEvent, String> {
        let object = value.as_object().ok_or("an event must be a JSON object")?;
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let expected = [
            "actor",
            "at",
            "data",
            "hash",
            "idempotency_key",
            "ledger",
            "prev_hash",
            "request_id",
            "seq",
            "type",
        ];
        if keys != expected {
            return Err(format!(
                "an event has exactly the keys {expected:?}, found {keys:?}"
            ));
        }
        let text = |key: &str| {
            object[key]
                .as_str()
                .ok_or(format!("{key} must be a string"))
        };
        let optional = |key: &str| match &object[key] {
            Value::Null => Ok(None),
            Value::String(text) => Ok(Some(text.clone())),
            _ => Err(format!("{key} must be a string or null")),
        };
        let hash = |key: &str| {
            Hash32::from_hex(text(key)?).ok_or(format!("{key} must be 64 lowercase hex digits"))
        };
        Ok(JournalEvent {
            ledger: text("ledger")?.to_owned(),
            seq: object["seq"]
                .as_u64()
                .ok_or("seq must be a positive integer")?,
            event_type: text("type")?.to_owned(),
            at: parse_timestamp(text("at")?).ok_or("at must be RFC 3339 UTC with microseconds")?,
            actor: text("actor")?.to_owned(),
            request_id: optional("request_id")?,
            idempotency_key: optional("idempotency_key")?,
            data: object["data"].clone(),
            prev_hash: hash("prev_hash")?,
            hash: hash("hash")?,
        })
    }
}

/// The head of a ledger's chain: the last seq and hash. Sealing events extends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Hash32,
}

impl ChainHead {
    pub const GENESIS: ChainHead = ChainHead {
        seq: 0,
        hash: Hash32::ZERO,
    };

    /// Chains one applied event onto this head and moves the head to it.
    pub fn seal(
        &mut self,
        ledger: &LedgerName,
        applied: &AppliedEvent,
        provenance: &Provenance,
    ) -> JournalEvent {
        assert_eq!(
            applied.seq,
            self.seq + 1,
            "events are sealed in seq order without gaps"
        );
        let mut event = JournalEvent {
            ledger: ledger.as_str().to_owned(),
            seq: applied.seq,
            event_type: applied.event.type_name().to_owned(),
            at: applied.at,
            actor: provenance.actor.clone(),
            request_id: provenance.request_id.clone(),
            idempotency_key: provenance.idempotency_key.clone(),
            data: encode_data(&applied.event),
            prev_hash: self.hash,
            hash: Hash32::ZERO,
        };
        event.hash = event.computed_hash();
        *self = ChainHead {
            seq: event.seq,
            hash: event.hash,
        };
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(request_id: Option<&str>, idempotency_key: Option<&str>, data: Value) -> JournalEvent {
        JournalEvent {
            ledger: "main".into(),
            seq: 42,
            event_type: "transfer_created".into(),
            at: Timestamp::from_unix_micros(1_800_000_000_123_456),
            actor: "0b5a4c1e-0000-7000-8000-000000000001".into(),
            request_id: request_id.map(str::to_owned),
            idempotency_key: idempotency_key.map(str::to_owned),
            data,
            prev_hash: Hash32::sha256(b"previous"),
            hash: Hash32::ZERO,
        }
    }

    #[test]
    fn the_canonical_body_is_the_rfc_8785_form_of_the_body_object() {
        let events = [
            event(None, None, json!({})),
            event(
                Some("req \"1\""),
                Some("key\u{1}\u{e9}"),
                json!({
                    "amount": "10.00",
                    "metadata": {"z": [1.5, null, true], "\u{1f600}": "x", "\u{fb33}": -0.0}
                }),
            ),
        ];
        for event in events {
            let reference = serde_json_canonicalizer::to_vec(&Value::Object(event.body())).unwrap();
            assert_eq!(
                String::from_utf8(event.canonical_body()).unwrap(),
                String::from_utf8(reference).unwrap()
            );
        }
    }
}
