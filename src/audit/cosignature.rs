//! C2SP `tlog-cosignature` (cosignature/v1, Ed25519): a witness's statement that, as of a time,
//! the checkpoint it signs is the largest consistent tree it has seen of that log.
//!
//! A cosignature is one more signed-note signature line on the checkpoint:
//!
//! ```text
//! — <witness name> <base64(key ID ‖ 8-byte big-endian timestamp ‖ 64-byte Ed25519 signature)>
//! ```
//!
//! - key ID = SHA-256(witness name ‖ 0x0A ‖ 0x04 ‖ 32-byte Ed25519 public key)[0..4];
//! - the signed message is `cosignature/v1\n`, `time <timestamp>\n` (seconds since the Unix epoch,
//!   ASCII decimal, no leading zeros) and the whole checkpoint body, extension lines included
//!   (every line above the note's blank line, with the final newline);
//! - the witness's verifier key (vkey) is `<name>+<key ID hex>+<base64(0x04 ‖ public key)>`, the
//!   form of the log's own verifier key with the cosignature type byte.
//!
//! The Ed25519 message does not name the witness, so a line can be renamed by anyone: witnesses
//! are told apart (and counted) by their public keys, never by their names.
//!
//! Pure: no I/O, no clock (times are arguments), no randomness. Bad input returns an error; it
//! never panics.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::audit::checkpoint::{
    check_key_name, check_note_size, decode_typed_key, format_typed_key, split_signed_note,
    split_typed_key, typed_key_id, CheckpointError, SignatureLine, MAX_NOTE_SIGNATURES,
};

/// The first line of every cosigned message: domain separation.
pub const COSIGNATURE_V1_HEADER: &str = "cosignature/v1";

/// The signed-note signature type of Ed25519 cosignatures (in key IDs and vkeys).
pub const ED25519_COSIGNATURE_TYPE: u8 = 0x04;

/// The largest timestamp a cosignature may carry (C2SP: 2^63 − 1).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

const KEY_ID_BYTES: usize = 4;
const TIMESTAMP_BYTES: usize = 8;
const SIGNATURE_BYTES: usize = 64;
/// key ID ‖ timestamp ‖ signature.
pub const PAYLOAD_BYTES: usize = KEY_ID_BYTES + TIMESTAMP_BYTES + SIGNATURE_BYTES;

/// Why a cosignature, a witness key or a note with cosignatures was refused. Key IDs print as
/// 8 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    #[error(transparent)]
    Note(#[from] CheckpointError),
    #[error("witness key is malformed: {reason}")]
    MalformedWitnessKey { reason: &'static str },
    #[error("witness key states key ID {stated} but its name and key give {computed}")]
    WitnessKeyIdMismatch { stated: String, computed: String },
    #[error("cosignature line is malformed: {reason}")]
    MalformedCosignature { reason: &'static str },
    #[error("cosignature timestamp {timestamp} is above 2^63 - 1")]
    TimestampTooLarge { timestamp: u64 },
    #[error("cosignature timestamp {timestamp} is later than {not_after}")]
    TimestampInTheFuture { timestamp: u64, not_after: u64 },
    #[error("cosignature by {name} (key ID {key_id}) is not by the witness key given")]
    NotByThisWitness { name: String, key_id: String },
    #[error("cosignature by witness {name} (key ID {key_id}) does not verify")]
    InvalidSignature { name: String, key_id: String },
    #[error("the note has no cosignature by the witness {name} (key ID {key_id})")]
    Missing { name: String, key_id: String },
    #[error("{valid} valid cosignature(s) from the witnesses given, {required} required")]
    TooFew { valid: usize, required: usize },
}

// ---------------------------------------------------------------------------------------------
// Witness keys.

/// SHA-256(name ‖ "\n" ‖ 0x04 ‖ public key)[0..4]: names a witness key in cosignature lines.
pub fn witness_key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    typed_key_id(name, ED25519_COSIGNATURE_TYPE, key)
}

/// A witness's public key, under its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessKey {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl WitnessKey {
    pub fn new(name: &str, key: VerifyingKey) -> Result<WitnessKey, CosignatureError> {
        check_key_name(name)?;
        Ok(WitnessKey {
            name: name.to_owned(),
            key_id: witness_key_id(name, &key),
            key,
        })
    }

    /// Parses `<name>+<8 hex digits>+<base64(0x04 ‖ 32-byte key)>` and checks the key ID.
    pub fn from_vkey(text: &str) -> Result<WitnessKey, CosignatureError> {
        let malformed = |reason| CosignatureError::MalformedWitnessKey { reason };
        let (name, key_id_hex, key_base64) = split_typed_key(text).map_err(malformed)?;
        check_key_name(name)?;
        let (stated, key) = decode_typed_key(
            key_id_hex,
            key_base64,
            ED25519_COSIGNATURE_TYPE,
            "signature type is not the Ed25519 cosignature type (0x04)",
        )
        .map_err(malformed)?;
        let witness = WitnessKey::new(name, key)?;
        if witness.key_id != stated {
            return Err(CosignatureError::WitnessKeyIdMismatch {
                stated: hex::encode(stated),
                computed: hex::encode(witness.key_id),
            });
        }
        Ok(witness)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// `<name>+<key ID hex>+<base64(0x04 ‖ public key)>`.
    pub fn to_vkey(&self) -> String {
        format_typed_key(&self.name, self.key_id, ED25519_COSIGNATURE_TYPE, &self.key)
    }
}

// ---------------------------------------------------------------------------------------------
// Cosignatures.

/// `cosignature/v1\ntime <timestamp>\n` followed by the checkpoint body (the note's text, with
/// its final newline): what the witness signs.
pub fn signed_message(note_text: &str, timestamp: u64) -> Vec<u8> {
    let mut message = format!("{COSIGNATURE_V1_HEADER}\ntime {timestamp}\n").into_bytes();
    message.extend_from_slice(note_text.as_bytes());
    message
}

/// One cosignature: who (name and key ID), when, and the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosignature {
    pub name: String,
    pub key_id: [u8; 4],
    /// Seconds since the Unix epoch, at most [`MAX_TIMESTAMP`].
    pub timestamp: u64,
    pub signature: [u8; SIGNATURE_BYTES],
}

impl Cosignature {
    /// base64(key ID ‖ 8-byte big-endian timestamp ‖ 64-byte signature).
    pub fn payload_base64(&self) -> String {
        let mut payload = Vec::with_capacity(PAYLOAD_BYTES);
        payload.extend_from_slice(&self.key_id);
        payload.extend_from_slice(&self.timestamp.to_be_bytes());
        payload.extend_from_slice(&self.signature);
        BASE64.encode(payload)
    }

    /// The signature line, `— <name> <payload base64>\n`.
    pub fn line(&self) -> String {
        format!("\u{2014} {} {}\n", self.name, self.payload_base64())
    }

    /// A parsed signature line read as a cosignature: exactly 8 + 64 bytes after the key ID.
    pub fn from_signature_line(line: &SignatureLine<'_>) -> Result<Cosignature, CosignatureError> {
        let malformed = |reason| CosignatureError::MalformedCosignature { reason };
        if line.signature.len() != TIMESTAMP_BYTES + SIGNATURE_BYTES {
            return Err(malformed(
                "not 8 timestamp bytes and a 64-byte Ed25519 signature after the key ID",
            ));
        }
        let (timestamp, signature) = line.signature.split_at(TIMESTAMP_BYTES);
        let timestamp =
            u64::from_be_bytes(timestamp.try_into().map_err(|_| malformed("timestamp"))?);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampTooLarge { timestamp });
        }
        Ok(Cosignature {
            name: line.name.to_owned(),
            key_id: line.key_id,
            timestamp,
            signature: signature
                .try_into()
                .map_err(|_| malformed("signature is not 64 bytes"))?,
        })
    }

    /// Whether the line names this witness key (name and key ID).
    pub fn names(&self, witness: &WitnessKey) -> bool {
        self.name == witness.name && self.key_id == witness.key_id
    }
}

/// The witness's cosignature of a checkpoint body (`note_text`, the signed text of the note) at
/// `timestamp`.
pub fn cosign(
    note_text: &str,
    name: &str,
    key: &SigningKey,
    timestamp: u64,
) -> Result<Cosignature, CosignatureError> {
    check_key_name(name)?;
    if timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampTooLarge { timestamp });
    }
    if !note_text.ends_with('\n') {
        return Err(CheckpointError::NoteTextNotTerminated.into());
    }
    if note_text.bytes().any(|byte| byte < 0x20 && byte != b'\n') {
        return Err(CheckpointError::ControlCharacter.into());
    }
    check_note_size(note_text)?;
    let signature = key.sign(&signed_message(note_text, timestamp));
    Ok(Cosignature {
        name: name.to_owned(),
        key_id: witness_key_id(name, &key.verifying_key()),
        timestamp,
        signature: signature.to_bytes(),
    })
}

/// Co-signs a signed note (as the log serves it, with any signature lines it has): returns the
/// note with the cosignature line appended, and the cosignature.
pub fn cosign_note(
    note: &str,
    name: &str,
    key: &SigningKey,
    timestamp: u64,
) -> Result<(String, Cosignature), CosignatureError> {
    let (text, _) = split_signed_note(note)?;
    let cosignature = cosign(text, name, key, timestamp)?;
    let cosigned = append_cosignatures(note, std::slice::from_ref(&cosignature))?;
    Ok((cosigned, cosignature))
}

/// The note with these cosignature lines appended after its signature lines. Refuses a result
/// above the limits of a note (100 signature lines, 1 MiB).
pub fn append_cosignatures(
    note: &str,
    cosignatures: &[Cosignature],
) -> Result<String, CosignatureError> {
    let (_, lines) = split_signed_note(note)?;
    if lines.len() + cosignatures.len() > MAX_NOTE_SIGNATURES {
        return Err(CheckpointError::TooManySignatures.into());
    }
    let mut cosigned = note.to_owned();
    for cosignature in cosignatures {
        check_key_name(&cosignature.name)?;
        cosigned.push_str(&cosignature.line());
    }
    check_note_size(&cosigned)?;
    Ok(cosigned)
}

/// Verifies one cosignature of `note_text` against a witness key: the line must name the key
/// (name and key ID), its timestamp must not be after `not_after` (when given: a verifier may
/// refuse cosignatures from the future), and the Ed25519 signature must verify (strictly).
pub fn verify_cosignature(
    note_text: &str,
    cosignature: &Cosignature,
    witness: &WitnessKey,
    not_after: Option<u64>,
) -> Result<(), CosignatureError> {
    if !cosignature.names(witness) {
        return Err(CosignatureError::NotByThisWitness {
            name: cosignature.name.clone(),
            key_id: hex::encode(cosignature.key_id),
        });
    }
    if cosignature.timestamp > MAX_TIMESTAMP {
        return Err(CosignatureError::TimestampTooLarge {
            timestamp: cosignature.timestamp,
        });
    }
    if let Some(not_after) = not_after.filter(|limit| cosignature.timestamp > *limit) {
        return Err(CosignatureError::TimestampInTheFuture {
            timestamp: cosignature.timestamp,
            not_after,
        });
    }
    let signature = Signature::from_bytes(&cosignature.signature);
    witness
        .key
        .verify_strict(
            &signed_message(note_text, cosignature.timestamp),
            &signature,
        )
        .map_err(|_| CosignatureError::InvalidSignature {
            name: witness.name.clone(),
            key_id: hex::encode(witness.key_id),
        })
}

/// The cosignature of `witness` in a note: the first of its lines (by name and key ID) that
/// verifies; else why its lines failed, or [`CosignatureError::Missing`].
pub fn find_cosignature(
    note: &str,
    witness: &WitnessKey,
    not_after: Option<u64>,
) -> Result<Cosignature, CosignatureError> {
    let (text, lines) = split_signed_note(note)?;
    let mut failure = None;
    for line in &lines {
        if line.name != witness.name || line.key_id != witness.key_id {
            continue;
        }
        let verified = Cosignature::from_signature_line(line).and_then(|cosignature| {
            verify_cosignature(text, &cosignature, witness, not_after).map(|()| cosignature)
        });
        match verified {
            Ok(cosignature) => return Ok(cosignature),
            Err(error) => failure = failure.or(Some(error)),
        }
    }
    Err(failure.unwrap_or_else(|| CosignatureError::Missing {
        name: witness.name.clone(),
        key_id: hex::encode(witness.key_id),
    }))
}

/// A witness whose cosignature of the note verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cosigner {
    pub name: String,
    pub key_id: [u8; 4],
    /// The latest timestamp among its valid cosignatures in the note.
    pub timestamp: u64,
}

/// What the signature lines of a note say about the witnesses given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CosignatureCheck {
    /// One per distinct public key among the witnesses given, in their order, whose
    /// cosignature verified.
    pub cosigned_by: Vec<Cosigner>,
    /// Lines naming a given witness (name and key ID) that do not verify, with the reason;
    /// they count for nothing.
    pub invalid: Vec<(String, CosignatureError)>,
    /// Lines of other keys (the log's own signatures, unknown witnesses): ignored.
    pub other_lines: usize,
}

/// Checks every cosignature line of a note against the witness keys given. The note's text is
/// what the cosignatures must be over; the log's own signature is not checked here (open the
/// note with [`crate::audit::checkpoint::open_checkpoint`] for that). A line that names a given
/// witness and fails is reported, not fatal: a bad line cannot add to the count, and a line
/// anyone can add cannot block a good one.
pub fn check_cosignatures(
    note: &str,
    witnesses: &[WitnessKey],
    not_after: Option<u64>,
) -> Result<CosignatureCheck, CosignatureError> {
    let (text, lines) = split_signed_note(note)?;
    let mut check = CosignatureCheck::default();
    // Per distinct public key, in the order of `witnesses`: its best timestamp.
    let mut best: Vec<(VerifyingKey, Option<Cosigner>)> = Vec::new();
    for witness in witnesses {
        if !best.iter().any(|(key, _)| *key == witness.key) {
            best.push((witness.key, None));
        }
    }
    for line in &lines {
        let matching: Vec<&WitnessKey> = witnesses
            .iter()
            .filter(|witness| witness.name == line.name && witness.key_id == line.key_id)
            .collect();
        if matching.is_empty() {
            check.other_lines += 1;
            continue;
        }
        let cosignature = match Cosignature::from_signature_line(line) {
            Ok(cosignature) => cosignature,
            Err(error) => {
                check.invalid.push((line.name.to_owned(), error));
                continue;
            }
        };
        let mut last_error = None;
        let mut verified = None;
        for witness in matching {
            match verify_cosignature(text, &cosignature, witness, not_after) {
                Ok(()) => {
                    verified = Some(witness);
                    break;
                }
                Err(error) => last_error = Some(error),
            }
        }
        let Some(witness) = verified else {
            if let Some(error) = last_error {
                check.invalid.push((line.name.to_owned(), error));
            }
            continue;
        };
        let slot = best
            .iter_mut()
            .find(|(key, _)| *key == witness.key)
            .map(|(_, slot)| slot);
        if let Some(slot) = slot {
            if slot
                .as_ref()
                .is_none_or(|earlier| earlier.timestamp < cosignature.timestamp)
            {
                *slot = Some(Cosigner {
                    name: witness.name.clone(),
                    key_id: witness.key_id,
                    timestamp: cosignature.timestamp,
                });
            }
        }
    }
    check.cosigned_by = best
        .into_iter()
        .filter_map(|(_, cosigner)| cosigner)
        .collect();
    Ok(check)
}

/// At least `min` valid cosignatures, by distinct public keys, from these witness keys.
pub fn require_cosignatures(
    note: &str,
    witnesses: &[WitnessKey],
    min: usize,
    not_after: Option<u64>,
) -> Result<CosignatureCheck, CosignatureError> {
    let check = check_cosignatures(note, witnesses, not_after)?;
    if check.cosigned_by.len() < min {
        return Err(CosignatureError::TooFew {
            valid: check.cosigned_by.len(),
            required: min,
        });
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::{open_checkpoint, sign_checkpoint, NoteVerifier};
    use crate::audit::Hash32;
    use proptest::prelude::*;

    // Known answers computed independently with Python's `cryptography` package and hashlib:
    // witness seeds SHA-256("witness one") and SHA-256("witness two"), the checkpoint body of
    // checkpoint.rs's known answers (origin ledger.example/books/main, size 1234567, root
    // SHA-256("root")), timestamps 1795000000 and 1795000060.

    const KAT_BODY: &str =
        "ledger.example/books/main\n1234567\nSBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=\n";
    const KAT_FIRST_NAME: &str = "witness.example/w1";
    const KAT_SECOND_NAME: &str = "witness.example/w2";
    const KAT_FIRST_VKEY: &str =
        "witness.example/w1+bde24ed8+BEtSlAPDJQ8a1T7Osk3ZNKVWdwmW4dl3mCDUm3qonuyA";
    const KAT_SECOND_VKEY: &str =
        "witness.example/w2+af9470f9+BKptG3Fx2N1cf5HWKUCiqHJs8dbgFuSII8T17p7S8iYw";
    const KAT_FIRST_LINE: &str = "— witness.example/w1 \
         veJO2AAAAABq/YbAI3S9BTs05kosFXm+YybVCGxoRP1wQzmaQVElbH3URX0HYSVkQSr2W9emdRf7pr+94sqlsXox/\
         56KH3bkCGvjAw==\n";
    const KAT_SECOND_LINE: &str = "— witness.example/w2 \
                                   r5Rw+QAAAABq/Yb8cvPg+SP/SGFLM6GPmT2rMPC3/\
                                   rEmNisywGxZbu6U59kPcTAfO+Xg8yB4Ce4sIMmPLnCUOB2udhZBvHa5\
                                   LvQqBA==\n";
    const KAT_FIRST_TIME: u64 = 1_795_000_000;
    const KAT_SECOND_TIME: u64 = 1_795_000_060;

    fn first_key() -> SigningKey {
        SigningKey::from_bytes(&Hash32::sha256(b"witness one").0)
    }

    fn second_key() -> SigningKey {
        SigningKey::from_bytes(&Hash32::sha256(b"witness two").0)
    }

    fn log_key() -> SigningKey {
        SigningKey::from_bytes(&[42; 32])
    }

    fn first() -> WitnessKey {
        WitnessKey::new(KAT_FIRST_NAME, first_key().verifying_key()).unwrap()
    }

    fn second() -> WitnessKey {
        WitnessKey::new(KAT_SECOND_NAME, second_key().verifying_key()).unwrap()
    }

    /// The KAT body signed by the log (any key will do: cosignatures do not cover the log's
    /// signature line).
    fn log_note() -> String {
        sign_checkpoint(
            "ledger.example/books/main",
            1_234_567,
            &Hash32::sha256(b"root"),
            &log_key(),
        )
        .unwrap()
    }

    #[test]
    fn witness_key_ids_and_vkeys_match_a_by_hand_computation() {
        for (witness, vkey) in [(first(), KAT_FIRST_VKEY), (second(), KAT_SECOND_VKEY)] {
            let mut preimage = witness.name().as_bytes().to_vec();
            preimage.push(0x0a);
            preimage.push(0x04);
            preimage.extend_from_slice(witness.verifying_key().as_bytes());
            assert_eq!(witness.key_id(), Hash32::sha256(&preimage).0[..4]);
            assert_eq!(witness.to_vkey(), vkey);
            assert_eq!(WitnessKey::from_vkey(vkey).unwrap(), witness);
        }
        // The same key as a log key (type 0x01) has another key ID and is no witness key.
        let as_log_key = NoteVerifier::new(KAT_FIRST_NAME, first_key().verifying_key()).unwrap();
        assert_ne!(as_log_key.key_id(), first().key_id());
        assert!(WitnessKey::from_vkey(&as_log_key.to_verifier_key_string()).is_err());
        assert!(NoteVerifier::from_verifier_key_string(KAT_FIRST_VKEY).is_err());
    }

    #[test]
    fn the_signed_message_is_the_header_the_time_line_and_the_body() {
        assert_eq!(
            signed_message(KAT_BODY, 1_679_315_147),
            format!("cosignature/v1\ntime 1679315147\n{KAT_BODY}").into_bytes()
        );
        assert_eq!(
            signed_message("o\n1\nr\n", 0),
            b"cosignature/v1\ntime 0\no\n1\nr\n".to_vec()
        );
    }

    #[test]
    fn cosigning_reproduces_the_independently_computed_lines() {
        let one = cosign(KAT_BODY, KAT_FIRST_NAME, &first_key(), KAT_FIRST_TIME).unwrap();
        assert_eq!(one.line(), KAT_FIRST_LINE);
        assert_eq!(one.key_id, first().key_id());
        let two = cosign(KAT_BODY, KAT_SECOND_NAME, &second_key(), KAT_SECOND_TIME).unwrap();
        assert_eq!(two.line(), KAT_SECOND_LINE);
        let payload = BASE64.decode(one.payload_base64()).unwrap();
        assert_eq!(payload.len(), PAYLOAD_BYTES);
        assert_eq!(&payload[..4], &first().key_id());
        assert_eq!(&payload[4..12], &KAT_FIRST_TIME.to_be_bytes());
    }

    #[test]
    fn the_c2sp_example_cosignature_line_parses() {
        let note = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/\
                    Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa \
                    Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/\
                    Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n— witness.example.com/w1 \
                    jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/\
                    zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";
        let (_, lines) = split_signed_note(note).unwrap();
        let cosignature = Cosignature::from_signature_line(&lines[1]).unwrap();
        assert_eq!(cosignature.name, "witness.example.com/w1");
        assert_eq!(cosignature.key_id, [0x8d, 0x66, 0xcf, 0x3f]);
        assert_eq!(cosignature.timestamp, 1_679_315_147);
        assert_eq!(
            cosignature.line(),
            format!("{}\n", note.lines().last().unwrap())
        );
        // The log's own signature line is no cosignature (64 bytes after its key ID, not 72).
        assert!(Cosignature::from_signature_line(&lines[0]).is_err());
    }

    #[test]
    fn a_cosigned_note_opens_for_the_log_and_counts_its_witnesses() {
        let (once, _) =
            cosign_note(&log_note(), KAT_FIRST_NAME, &first_key(), KAT_FIRST_TIME).unwrap();
        let (twice, _) =
            cosign_note(&once, KAT_SECOND_NAME, &second_key(), KAT_SECOND_TIME).unwrap();
        assert!(twice.ends_with(&format!("{KAT_FIRST_LINE}{KAT_SECOND_LINE}")));
        // The log's verifier ignores the witness lines (another key ID).
        let log =
            NoteVerifier::new("ledger.example/books/main", log_key().verifying_key()).unwrap();
        assert!(open_checkpoint(&twice, "ledger.example/books/main", &[log]).is_ok());

        let both = [first(), second()];
        let check = require_cosignatures(&twice, &both, 2, None).unwrap();
        assert_eq!(
            check.cosigned_by,
            vec![
                Cosigner {
                    name: KAT_FIRST_NAME.into(),
                    key_id: first().key_id(),
                    timestamp: KAT_FIRST_TIME
                },
                Cosigner {
                    name: KAT_SECOND_NAME.into(),
                    key_id: second().key_id(),
                    timestamp: KAT_SECOND_TIME
                },
            ]
        );
        assert_eq!((check.other_lines, check.invalid.len()), (1, 0));
        assert_eq!(
            require_cosignatures(&once, &both, 2, None),
            Err(CosignatureError::TooFew {
                valid: 1,
                required: 2
            })
        );
        let unknown = WitnessKey::new("witness.example/w3", log_key().verifying_key()).unwrap();
        assert_eq!(
            require_cosignatures(&twice, &[first(), unknown], 2, None),
            Err(CosignatureError::TooFew {
                valid: 1,
                required: 2
            })
        );
        assert!(require_cosignatures(&twice, &[], 0, None).is_ok());
        assert_eq!(
            find_cosignature(&twice, &second(), None).unwrap().timestamp,
            KAT_SECOND_TIME
        );
        assert!(matches!(
            find_cosignature(&once, &second(), None),
            Err(CosignatureError::Missing { .. })
        ));
    }

    #[test]
    fn one_witness_counts_once_whatever_its_lines_and_names() {
        let (once, cosignature) =
            cosign_note(&log_note(), KAT_FIRST_NAME, &first_key(), KAT_FIRST_TIME).unwrap();
        let (again, _) =
            cosign_note(&once, KAT_FIRST_NAME, &first_key(), KAT_FIRST_TIME + 5).unwrap();
        let check = check_cosignatures(&again, &[first(), first()], None).unwrap();
        assert_eq!(check.cosigned_by.len(), 1);
        assert_eq!(check.cosigned_by[0].timestamp, KAT_FIRST_TIME + 5);
        // The message does not name the witness: anyone can copy the line under another name.
        // Listing that name too gives no second cosigner, because the key is the same.
        let alias = WitnessKey::new("alias.example/w", first_key().verifying_key()).unwrap();
        let renamed = Cosignature {
            name: alias.name().to_owned(),
            key_id: alias.key_id(),
            ..cosignature
        };
        let with_alias = append_cosignatures(&once, &[renamed]).unwrap();
        let check = check_cosignatures(&with_alias, &[first(), alias], None).unwrap();
        assert_eq!(check.cosigned_by.len(), 1);
        assert!(require_cosignatures(&with_alias, &[first(), second()], 2, None).is_err());
    }

    #[test]
    fn a_tampered_or_misattributed_cosignature_does_not_count() {
        let note = log_note();
        let (cosigned, cosignature) =
            cosign_note(&note, KAT_FIRST_NAME, &first_key(), KAT_FIRST_TIME).unwrap();
        // Another time: the signature covers the time line.
        let later = Cosignature {
            timestamp: KAT_FIRST_TIME + 1,
            ..cosignature.clone()
        };
        let mut bad_signature = cosignature.clone();
        bad_signature.signature[10] ^= 1;
        for bad in [later, bad_signature] {
            let forged = append_cosignatures(&note, &[bad]).unwrap();
            let check = check_cosignatures(&forged, &[first()], None).unwrap();
            assert!(check.cosigned_by.is_empty());
            assert!(matches!(
                check.invalid[..],
                [(_, CosignatureError::InvalidSignature { .. })]
            ));
            assert!(matches!(
                find_cosignature(&forged, &first(), None),
                Err(CosignatureError::InvalidSignature { .. })
            ));
        }
        // Over another body: the cosignature does not carry over to another checkpoint.
        let other = sign_checkpoint(
            "ledger.example/books/main",
            1_234_567,
            &Hash32::sha256(b"another root"),
            &log_key(),
        )
        .unwrap();
        let moved = append_cosignatures(&other, std::slice::from_ref(&cosignature)).unwrap();
        assert!(check_cosignatures(&moved, &[first()], None)
            .unwrap()
            .cosigned_by
            .is_empty());
        // A key listed under the witness's name and key ID but another key: not verified.
        let impostor = WitnessKey {
            key: second_key().verifying_key(),
            ..first()
        };
        assert!(check_cosignatures(&cosigned, &[impostor], None)
            .unwrap()
            .cosigned_by
            .is_empty());
        assert!(matches!(
            verify_cosignature(KAT_BODY, &cosignature, &second(), None),
            Err(CosignatureError::NotByThisWitness { .. })
        ));
    }

    #[test]
    fn cosignatures_from_the_future_are_refused_when_a_limit_is_given() {
        let (cosigned, _) =
            cosign_note(&log_note(), KAT_FIRST_NAME, &first_key(), KAT_FIRST_TIME).unwrap();
        assert!(require_cosignatures(&cosigned, &[first()], 1, Some(KAT_FIRST_TIME)).is_ok());
        let check = check_cosignatures(&cosigned, &[first()], Some(KAT_FIRST_TIME - 1)).unwrap();
        assert!(check.cosigned_by.is_empty());
        assert!(matches!(
            check.invalid[..],
            [(_, CosignatureError::TimestampInTheFuture { .. })]
        ));
        assert!(cosign(KAT_BODY, KAT_FIRST_NAME, &first_key(), MAX_TIMESTAMP).is_ok());
        assert_eq!(
            cosign(KAT_BODY, KAT_FIRST_NAME, &first_key(), MAX_TIMESTAMP + 1),
            Err(CosignatureError::TimestampTooLarge {
                timestamp: MAX_TIMESTAMP + 1
            })
        );
    }

    #[test]
    fn malformed_witness_keys_and_lines_are_refused() {
        let vkey = KAT_FIRST_VKEY.as_bytes();
        for position in 0..vkey.len() {
            let mut mangled = vkey.to_vec();
            mangled[position] = if mangled[position] == b'A' {
                b'B'
            } else {
                b'A'
            };
            if let Ok(mangled) = String::from_utf8(mangled) {
                assert!(WitnessKey::from_vkey(&mangled).is_err(), "{mangled}");
            }
        }
        for bad in [
            "",
            "a",
            "a+b",
            "a+bde24ed8+",
            "a b+bde24ed8+BEtS",
            "witness.example/w1+bde24ed8+AUtSlAPDJQ8a1T7Osk3ZNKVWdwmW4dl3mCDUm3qonuyA",
        ] {
            assert!(WitnessKey::from_vkey(bad).is_err(), "{bad}");
        }
        assert!(WitnessKey::new("a b", first_key().verifying_key()).is_err());
        assert!(cosign("no newline", KAT_FIRST_NAME, &first_key(), 1).is_err());
        assert!(cosign("tab\t\n", KAT_FIRST_NAME, &first_key(), 1).is_err());
        assert!(cosign(KAT_BODY, "bad name", &first_key(), 1).is_err());
        // A line of a known witness with a payload of the wrong length is reported, not counted.
        let short = format!(
            "{}— {KAT_FIRST_NAME} {}\n",
            log_note(),
            BASE64.encode([0xbd, 0xe2, 0x4e, 0xd8, 1, 2, 3])
        );
        let check = check_cosignatures(&short, &[first()], None).unwrap();
        assert!(matches!(
            check.invalid[..],
            [(_, CosignatureError::MalformedCosignature { .. })]
        ));
        let too_late = {
            let mut payload = first().key_id().to_vec();
            payload.extend_from_slice(&u64::MAX.to_be_bytes());
            payload.extend_from_slice(&[0; 64]);
            format!(
                "{}— {KAT_FIRST_NAME} {}\n",
                log_note(),
                BASE64.encode(payload)
            )
        };
        let check = check_cosignatures(&too_late, &[first()], None).unwrap();
        assert!(matches!(
            check.invalid[..],
            [(_, CosignatureError::TimestampTooLarge { .. })]
        ));
    }

    #[test]
    fn a_note_cannot_grow_past_one_hundred_signature_lines() {
        let one = cosign(KAT_BODY, KAT_FIRST_NAME, &first_key(), 1).unwrap();
        let note = log_note();
        assert!(append_cosignatures(&note, &vec![one.clone(); 99]).is_ok());
        assert_eq!(
            append_cosignatures(&note, &vec![one; 100]),
            Err(CosignatureError::Note(CheckpointError::TooManySignatures))
        );
    }

    proptest! {
        #[test]
        fn checking_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = check_cosignatures(&text, &[first()], Some(0));
            let _ = WitnessKey::from_vkey(&text);
            let _ = find_cosignature(&text, &first(), None);
        }

        #[test]
        fn changing_any_byte_of_a_cosignature_line_makes_it_fail(
            position_fraction in 0.0f64..1.0, new_byte in 0x21u8..0x7f,
        ) {
            let note = log_note();
            let (cosigned, _) =
                cosign_note(&note, KAT_FIRST_NAME, &first_key(), KAT_FIRST_TIME).unwrap();
            let line_start = note.len() + "— ".len();
            let mut bytes = cosigned.clone().into_bytes();
            let span = (bytes.len() - 1 - line_start) as f64;
            let position = line_start + (span * position_fraction) as usize;
            prop_assume!(bytes[position] != new_byte && bytes[position] != b' ');
            bytes[position] = new_byte;
            if let Ok(tampered) = String::from_utf8(bytes) {
                let valid = check_cosignatures(&tampered, &[first()], None)
                    .map(|check| check.cosigned_by.len())
                    .unwrap_or(0);
                prop_assert_eq!(valid, 0, "{:?}", tampered);
            }
        }
    }
}
