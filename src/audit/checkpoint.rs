//! Signed checkpoints: a C2SP `tlog-checkpoint` body inside a C2SP `signed-note`, signed with
//! Ed25519 (signature type 0x01).
//!
//! ```text
//! <origin>
//! <tree size, decimal, no leading zeros>
//! <root hash, standard base64>
//! [extension lines]
//!
//! — <key name> <base64(4-byte key ID ‖ 64-byte Ed25519 signature of the note's text)>
//! ```
//!
//! The note's text, which the signature covers, is everything above the blank line (its final
//! newline included).
//!
//! The service writes one extension line, `signed_at <RFC 3339 UTC timestamp, microseconds>`:
//! when it signed the note, to be held against the signing key's `valid_from` / `retired_at`.
//! Notes without it (issued before it existed) remain valid.
//!
//! Key ID = SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)[0..4]. A verifier key is written
//! `<name>+<key ID, 8 hex digits>+<base64(0x01 ‖ public key)>`, as Go's
//! `golang.org/x/mod/sumdb/note` does. The service signs with key name = origin.
//!
//! Pure: no I/O, no clock, no randomness. Bad input (any note text, any verifier key string)
//! returns an error; it never panics.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::audit::hash::Hash32;
use crate::audit::time::{format_timestamp, parse_timestamp};
use crate::domain::Timestamp;

/// Notes above this size are refused before any parsing (the spec asks verifiers for a limit).
pub const MAX_NOTE_BYTES: usize = 1 << 20;

/// The spec requires accepting at least 16 signatures; Go's `note.Open` stops at 100.
pub const MAX_NOTE_SIGNATURES: usize = 100;

/// U+2014 EM DASH and a space open every signature line.
const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// C2SP signed-note signature type byte for Ed25519.
const ED25519_SIGNATURE_TYPE: u8 = 0x01;

const KEY_ID_BYTES: usize = 4;
const ED25519_SIGNATURE_BYTES: usize = 64;

/// Why a note, a checkpoint or a verifier key was refused. Key IDs print as 8 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("note is {size} bytes, above the limit of {MAX_NOTE_BYTES}")]
    NoteTooLarge { size: usize },
    #[error("note contains an ASCII control character other than newline")]
    ControlCharacter,
    #[error("note has no blank line followed by signature lines")]
    MissingSignatureBlock,
    #[error("note has more than {MAX_NOTE_SIGNATURES} signature lines")]
    TooManySignatures,
    #[error("signature line {line_number} is malformed")]
    MalformedSignatureLine { line_number: usize },
    #[error("note text is empty or does not end with a newline")]
    NoteTextNotTerminated,
    #[error("key name {name:?} is empty or contains a space or '+'")]
    InvalidKeyName { name: String },
    #[error("verifier key is malformed: {reason}")]
    MalformedVerifierKey { reason: &'static str },
    #[error("verifier key states key ID {stated} but its name and key give {computed}")]
    VerifierKeyIdMismatch { stated: String, computed: String },
    #[error("two different known keys share the name {name} and key ID {key_id}")]
    AmbiguousKnownKey { name: String, key_id: String },
    #[error("signature by known key {name}+{key_id} does not verify")]
    InvalidSignature { name: String, key_id: String },
    #[error("note has no signature by a known key")]
    NoKnownSignature,
    #[error("checkpoint body is malformed: {reason}")]
    MalformedCheckpoint { reason: &'static str },
    #[error("checkpoint origin {found:?} is not the expected origin {expected:?}")]
    WrongOrigin { found: String, expected: String },
}

// ---------------------------------------------------------------------------------------------
// Keys.

/// C2SP signed-note key names: non-empty, no Unicode whitespace, no '+'. Control characters are
/// refused too, since a note may not contain them anyway.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
}

/// SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)[0..4]: names the key in signature lines.
pub fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    typed_key_id(name, ED25519_SIGNATURE_TYPE, key)
}

/// SHA-256(name ‖ "\n" ‖ signature type ‖ public key)[0..4]: the key ID of any signed-note
/// signature type (0x01 for Ed25519 note signatures, 0x04 for Ed25519 cosignatures).
pub(crate) fn typed_key_id(name: &str, signature_type: u8, key: &VerifyingKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([signature_type]);
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// `<name>+<key ID hex>+<base64(0x01 ‖ public key)>`, the form `GET /v1/keys` publishes.
pub fn verifier_key_string(name: &str, key: &VerifyingKey) -> Result<String, CheckpointError> {
    Ok(NoteVerifier::new(name, *key)?.to_verifier_key_string())
}

/// A key a note may be signed by: its name, its key ID and its Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    pub fn new(name: &str, key: VerifyingKey) -> Result<NoteVerifier, CheckpointError> {
        check_key_name(name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: key_id(name, &key),
            key,
        })
    }

    /// Parses `<name>+<8 hex digits>+<base64(0x01 ‖ 32-byte key)>` and checks the key ID.
    pub fn from_verifier_key_string(text: &str) -> Result<NoteVerifier, CheckpointError> {
        let malformed = |reason| CheckpointError::MalformedVerifierKey { reason };
        let (name, key_id_hex, key_base64) = split_typed_key(text).map_err(malformed)?;
        check_key_name(name)?;
        let (stated_key_id, key) = decode_typed_key(
            key_id_hex,
            key_base64,
            ED25519_SIGNATURE_TYPE,
            "signature type is not Ed25519 (0x01)",
        )
        .map_err(malformed)?;
        let verifier = NoteVerifier::new(name, key)?;
        if verifier.key_id != stated_key_id {
            return Err(CheckpointError::VerifierKeyIdMismatch {
                stated: hex::encode(stated_key_id),
                computed: hex::encode(verifier.key_id),
            });
        }
        Ok(verifier)
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

    pub fn to_verifier_key_string(&self) -> String {
        format_typed_key(&self.name, self.key_id, ED25519_SIGNATURE_TYPE, &self.key)
    }
}

/// The three parts of a C2SP verifier key, `<name>+<key ID hex>+<base64 key>`: the name has no
/// '+', so the first '+' ends it; base64 may contain '+', so the key is everything after the
/// second. `Err` says what is malformed.
pub(crate) fn split_typed_key(text: &str) -> Result<(&str, &str, &str), &'static str> {
    let (name, rest) = text.split_once('+').ok_or("missing '+'")?;
    let (key_id_hex, key_base64) = rest.split_once('+').ok_or("missing second '+'")?;
    Ok((name, key_id_hex, key_base64))
}

/// The stated key ID and the Ed25519 key of a verifier key whose base64 part must be
/// `signature_type ‖ 32-byte key`; `wrong_type` is the reason given for another type byte.
pub(crate) fn decode_typed_key(
    key_id_hex: &str,
    key_base64: &str,
    signature_type: u8,
    wrong_type: &'static str,
) -> Result<([u8; 4], VerifyingKey), &'static str> {
    let stated = parse_key_id_hex(key_id_hex).ok_or("key ID is not 8 hex digits")?;
    let typed_key = BASE64.decode(key_base64).map_err(|_| "key is not base64")?;
    let Some((&found_type, key_bytes)) = typed_key.split_first() else {
        return Err("key is empty");
    };
    if found_type != signature_type {
        return Err(wrong_type);
    }
    let key_bytes: [u8; 32] = key_bytes
        .try_into()
        .map_err(|_| "Ed25519 key is not 32 bytes")?;
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| "not an Ed25519 point")?;
    Ok((stated, key))
}

/// `<name>+<key ID hex>+<base64(signature_type ‖ public key)>`.
pub(crate) fn format_typed_key(
    name: &str,
    key_id: [u8; 4],
    signature_type: u8,
    key: &VerifyingKey,
) -> String {
    let mut typed_key = vec![signature_type];
    typed_key.extend_from_slice(key.as_bytes());
    format!(
        "{name}+{}+{}",
        hex::encode(key_id),
        BASE64.encode(typed_key)
    )
}

pub(crate) fn check_key_name(name: &str) -> Result<(), CheckpointError> {
    if !is_valid_key_name(name) {
        return Err(CheckpointError::InvalidKeyName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

pub(crate) fn parse_key_id_hex(text: &str) -> Option<[u8; 4]> {
    let mut key_id = [0u8; KEY_ID_BYTES];
    if text.len() != 2 * KEY_ID_BYTES {
        return None;
    }
    hex::decode_to_slice(text, &mut key_id).ok()?;
    Some(key_id)
}

// ---------------------------------------------------------------------------------------------
// Signed notes.

/// A key that signed a note: its name and key ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSigner {
    pub name: String,
    pub key_id: [u8; 4],
}

/// A note whose signatures by known keys all verified (and at least one exists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNote {
    /// The signed text, including its final newline.
    pub text: String,
    /// The known keys whose signatures verified, in note order.
    pub verified_by: Vec<NoteSigner>,
    /// Signature lines by keys not in the known list; ignored as the spec demands.
    pub unknown_signature_count: usize,
}

/// Signs `text` (which must end with a newline) with each `(key name, key)` in turn.
pub fn sign_note(text: &str, signers: &[(&str, &SigningKey)]) -> Result<String, CheckpointError> {
    check_note_text(text)?;
    let mut note = String::with_capacity(text.len() + 1 + signers.len() * 128);
    note.push_str(text);
    note.push('\n');
    for (name, signing_key) in signers {
        note.push_str(&signature_line(text, name, signing_key)?);
    }
    check_note_size(&note)?;
    Ok(note)
}

fn check_note_text(text: &str) -> Result<(), CheckpointError> {
    if !text.ends_with('\n') {
        return Err(CheckpointError::NoteTextNotTerminated);
    }
    check_no_control_characters(text)?;
    check_note_size(text)
}

fn signature_line(
    text: &str,
    name: &str,
    signing_key: &SigningKey,
) -> Result<String, CheckpointError> {
    check_key_name(name)?;
    let signature = signing_key.sign(text.as_bytes());
    let mut key_id_and_signature = key_id(name, &signing_key.verifying_key()).to_vec();
    key_id_and_signature.extend_from_slice(&signature.to_bytes());
    assert_eq!(
        key_id_and_signature.len(),
        KEY_ID_BYTES + ED25519_SIGNATURE_BYTES
    );
    Ok(format!(
        "{SIGNATURE_LINE_PREFIX}{name} {}\n",
        BASE64.encode(key_id_and_signature)
    ))
}

pub(crate) fn check_note_size(note: &str) -> Result<(), CheckpointError> {
    if note.len() > MAX_NOTE_BYTES {
        return Err(CheckpointError::NoteTooLarge { size: note.len() });
    }
    Ok(())
}

fn check_no_control_characters(note: &str) -> Result<(), CheckpointError> {
    if note.bytes().any(|byte| byte < 0x20 && byte != b'\n') {
        return Err(CheckpointError::ControlCharacter);
    }
    Ok(())
}

/// One parsed signature line: `— <name> <base64(key ID ‖ signature)>`.
pub struct SignatureLine<'a> {
    pub name: &'a str,
    pub key_id: [u8; 4],
    /// The bytes after the key ID (for an Ed25519 note signature, the 64-byte signature; for a
    /// cosignature, the timestamp and the signature).
    pub signature: Vec<u8>,
}

/// The signed text of a note (up to and including the newline before the blank line) and its
/// signature lines, parsed but not verified: for readers of signature types other than the
/// note's own (cosignatures). Refuses what [`open_note`] refuses about the form.
pub fn split_signed_note(note: &str) -> Result<(&str, Vec<SignatureLine<'_>>), CheckpointError> {
    check_note_size(note)?;
    check_no_control_characters(note)?;
    let (text, lines) = split_note(note)?;
    let parsed = lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            parse_signature_line(line).ok_or(CheckpointError::MalformedSignatureLine {
                line_number: index + 1,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((text, parsed))
}

/// Opens a signed note: checks its form, verifies every signature by a known key, ignores
/// signatures by unknown keys, and refuses the note if a known key's signature fails (the spec's
/// SHOULD, as Go does) or if no known key signed it.
pub fn open_note(note: &str, known: &[NoteVerifier]) -> Result<VerifiedNote, CheckpointError> {
    check_note_size(note)?;
    check_no_control_characters(note)?;
    let (text, signature_lines) = split_note(note)?;
    let mut verified_by = Vec::new();
    let mut unknown_signature_count = 0;
    for (line_index, line) in signature_lines.iter().enumerate() {
        let parsed = parse_signature_line(line).ok_or(CheckpointError::MalformedSignatureLine {
            line_number: line_index + 1,
        })?;
        match find_known_key(known, parsed.name, parsed.key_id)? {
            None => unknown_signature_count += 1,
            Some(verifier) => {
                verify_signature(verifier, text, &parsed.signature)?;
                verified_by.push(NoteSigner {
                    name: verifier.name.clone(),
                    key_id: verifier.key_id,
                });
            }
        }
    }
    if verified_by.is_empty() {
        return Err(CheckpointError::NoKnownSignature);
    }
    assert_eq!(
        verified_by.len() + unknown_signature_count,
        signature_lines.len()
    );
    Ok(VerifiedNote {
        text: text.to_owned(),
        verified_by,
        unknown_signature_count,
    })
}

/// The text (up to and including the newline before the last blank line) and the signature
/// lines after it, without their newlines. Counts the lines before parsing any of them, so a
/// huge signature block costs nothing.
fn split_note(note: &str) -> Result<(&str, Vec<&str>), CheckpointError> {
    let blank_line = note
        .rfind("\n\n")
        .ok_or(CheckpointError::MissingSignatureBlock)?;
    let text = &note[..blank_line + 1];
    let signature_block = &note[blank_line + 2..];
    let Some(signature_block) = signature_block.strip_suffix('\n') else {
        return Err(CheckpointError::MissingSignatureBlock);
    };
    if signature_block.is_empty() {
        return Err(CheckpointError::MissingSignatureBlock);
    }
    if signature_block.matches('\n').count() + 1 > MAX_NOTE_SIGNATURES {
        return Err(CheckpointError::TooManySignatures);
    }
    Ok((text, signature_block.split('\n').collect()))
}

fn parse_signature_line(line: &str) -> Option<SignatureLine<'_>> {
    let rest = line.strip_prefix(SIGNATURE_LINE_PREFIX)?;
    let (name, signature_base64) = rest.split_once(' ')?;
    if !is_valid_key_name(name) {
        return None;
    }
    let decoded = BASE64.decode(signature_base64).ok()?;
    // A key ID and at least one byte of signature, as Go requires.
    if decoded.len() <= KEY_ID_BYTES {
        return None;
    }
    let (key_id_bytes, signature) = decoded.split_at(KEY_ID_BYTES);
    Some(SignatureLine {
        name,
        key_id: key_id_bytes.try_into().ok()?,
        signature: signature.to_vec(),
    })
}

/// The known key with this name and key ID. Listing one key twice is harmless; two different
/// keys under one name and ID is a configuration error worth stopping for.
fn find_known_key<'a>(
    known: &'a [NoteVerifier],
    name: &str,
    key_id: [u8; 4],
) -> Result<Option<&'a NoteVerifier>, CheckpointError> {
    let mut matching = known
        .iter()
        .filter(|verifier| verifier.name == name && verifier.key_id == key_id);
    let Some(first) = matching.next() else {
        return Ok(None);
    };
    if matching.any(|other| other.key != first.key) {
        return Err(CheckpointError::AmbiguousKnownKey {
            name: name.to_owned(),
            key_id: hex::encode(key_id),
        });
    }
    Ok(Some(first))
}

fn verify_signature(
    verifier: &NoteVerifier,
    text: &str,
    signature: &[u8],
) -> Result<(), CheckpointError> {
    let invalid = || CheckpointError::InvalidSignature {
        name: verifier.name.clone(),
        key_id: hex::encode(verifier.key_id),
    };
    let signature = Signature::from_slice(signature).map_err(|_| invalid())?;
    // Strict verification refuses small-order keys and non-canonical signatures.
    verifier
        .key
        .verify_strict(text.as_bytes(), &signature)
        .map_err(|_| invalid())
}

// ---------------------------------------------------------------------------------------------
// Checkpoints.

/// A C2SP tlog-checkpoint: the tree head of one ledger's journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash32,
    /// Non-empty lines after the root. The service writes one, [`SIGNED_AT_EXTENSION`]; others
    /// are kept as read and mean nothing here.
    pub extensions: Vec<String>,
}

/// The keyword of the extension line stating when the service signed a checkpoint:
/// `signed_at 2026-11-18T11:06:40.004000Z`.
pub const SIGNED_AT_EXTENSION: &str = "signed_at";

impl Checkpoint {
    /// The note text: origin, size, base64 root and extension lines, each ending in a newline.
    /// Refuses field values that would not parse back to the same checkpoint.
    pub fn to_note_text(&self) -> Result<String, CheckpointError> {
        if !is_valid_checkpoint_line(&self.origin) {
            return Err(malformed_checkpoint("origin is empty or not a single line"));
        }
        if !self
            .extensions
            .iter()
            .all(|line| is_valid_checkpoint_line(line))
        {
            return Err(malformed_checkpoint(
                "an extension line is empty or not a single line",
            ));
        }
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root.0)
        );
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        Ok(text)
    }

    /// Parses a checkpoint body strictly: origin non-empty, size decimal without leading zeros,
    /// root canonical base64 of exactly 32 bytes, extension lines non-empty.
    pub fn from_note_text(text: &str) -> Result<Checkpoint, CheckpointError> {
        check_no_control_characters(text)?;
        let body = text
            .strip_suffix('\n')
            .ok_or(malformed_checkpoint("does not end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|line| !line.is_empty());
        let origin = origin.ok_or(malformed_checkpoint("origin line is empty"))?;
        let size_line = lines
            .next()
            .ok_or(malformed_checkpoint("tree size line is missing"))?;
        let root_line = lines
            .next()
            .ok_or(malformed_checkpoint("root hash line is missing"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(malformed_checkpoint("an extension line is empty"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size: parse_tree_size(size_line)?,
            root: parse_root_hash(root_line)?,
            extensions,
        })
    }
}

impl Checkpoint {
    /// When the service signed this checkpoint, from its `signed_at` extension line: `None`
    /// without one; an error when there are several or the time is not in the journal's form.
    pub fn signed_at(&self) -> Result<Option<Timestamp>, CheckpointError> {
        let prefix = format!("{SIGNED_AT_EXTENSION} ");
        let mut times = self
            .extensions
            .iter()
            .filter_map(|line| line.strip_prefix(&prefix));
        let Some(first) = times.next() else {
            return Ok(None);
        };
        if times.next().is_some() {
            return Err(malformed_checkpoint("more than one signed_at line"));
        }
        parse_timestamp(first).map(Some).ok_or(malformed_checkpoint(
            "signed_at is not an RFC 3339 UTC time with six fractional digits",
        ))
    }
}

fn malformed_checkpoint(reason: &'static str) -> CheckpointError {
    CheckpointError::MalformedCheckpoint { reason }
}

fn is_valid_checkpoint_line(line: &str) -> bool {
    !line.is_empty() && !line.bytes().any(|byte| byte < 0x20)
}

fn parse_tree_size(line: &str) -> Result<u64, CheckpointError> {
    let all_digits = !line.is_empty() && line.bytes().all(|byte| byte.is_ascii_digit());
    if !all_digits {
        return Err(malformed_checkpoint("tree size is not a decimal number"));
    }
    if line.len() > 1 && line.starts_with('0') {
        return Err(malformed_checkpoint("tree size has a leading zero"));
    }
    line.parse()
        .map_err(|_| malformed_checkpoint("tree size does not fit in 64 bits"))
}

fn parse_root_hash(line: &str) -> Result<Hash32, CheckpointError> {
    // The STANDARD engine demands canonical padding and zero trailing bits, so exactly one
    // text encodes each root.
    let bytes = BASE64
        .decode(line)
        .map_err(|_| malformed_checkpoint("root hash is not canonical base64"))?;
    Hash32::from_slice(&bytes).ok_or(malformed_checkpoint("root hash is not 32 bytes"))
}

/// The signed note of the checkpoint `(origin, size, root)`, key name = origin.
pub fn sign_checkpoint(
    origin: &str,
    size: u64,
    root: &Hash32,
    signing_key: &SigningKey,
) -> Result<String, CheckpointError> {
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size,
        root: *root,
        extensions: Vec::new(),
    };
    sign_checkpoint_with_keys(&checkpoint, &[signing_key])
}

/// The signed note of the checkpoint `(origin, size, root)` with its `signed_at` line, key
/// name = origin: what the service issues.
pub fn sign_checkpoint_at(
    origin: &str,
    size: u64,
    root: &Hash32,
    signed_at: Timestamp,
    signing_key: &SigningKey,
) -> Result<String, CheckpointError> {
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size,
        root: *root,
        extensions: vec![format!(
            "{SIGNED_AT_EXTENSION} {}",
            format_timestamp(signed_at)
        )],
    };
    sign_checkpoint_with_keys(&checkpoint, &[signing_key])
}

/// The signed note of `checkpoint` with one signature per key, all under key name = origin
/// (e.g. the old and the new key while a key rotation is under way).
pub fn sign_checkpoint_with_keys(
    checkpoint: &Checkpoint,
    signing_keys: &[&SigningKey],
) -> Result<String, CheckpointError> {
    let text = checkpoint.to_note_text()?;
    let signers: Vec<(&str, &SigningKey)> = signing_keys
        .iter()
        .map(|key| (checkpoint.origin.as_str(), *key))
        .collect();
    sign_note(&text, &signers)
}

/// Opens a signed checkpoint: the note must be signed by one of `known` (all known signatures
/// must verify), its body must be a well-formed checkpoint, and its origin must be
/// `expected_origin`.
pub fn open_checkpoint(
    note: &str,
    expected_origin: &str,
    known: &[NoteVerifier],
) -> Result<Checkpoint, CheckpointError> {
    let verified = open_note(note, known)?;
    let checkpoint = Checkpoint::from_note_text(&verified.text)?;
    if checkpoint.origin != expected_origin {
        return Err(CheckpointError::WrongOrigin {
            found: checkpoint.origin,
            expected: expected_origin.to_owned(),
        });
    }
    Ok(checkpoint)
}

/// A checkpoint opened with [`open_checkpoint_with_signers`]: the checkpoint and the known keys
/// whose signatures verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub signed_by: Vec<NoteSigner>,
}

/// As [`open_checkpoint`], and says which known keys signed.
pub fn open_checkpoint_with_signers(
    note: &str,
    expected_origin: &str,
    known: &[NoteVerifier],
) -> Result<SignedCheckpoint, CheckpointError> {
    let verified = open_note(note, known)?;
    let checkpoint = Checkpoint::from_note_text(&verified.text)?;
    if checkpoint.origin != expected_origin {
        return Err(CheckpointError::WrongOrigin {
            found: checkpoint.origin,
            expected: expected_origin.to_owned(),
        });
    }
    Ok(SignedCheckpoint {
        checkpoint,
        signed_by: verified.verified_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // -----------------------------------------------------------------------------------------
    // Vectors from Go's golang.org/x/mod/sumdb/note/note_test.go (the reference
    // implementation of C2SP signed-note).

    /// Go's test signer key
    /// `PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz`:
    /// base64(0x01 ‖ Ed25519 seed).
    const GO_PETER_SIGNER_KEY_BASE64: &str = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_PETER_VERIFIER_KEY: &str =
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_ENOCH_VERIFIER_KEY: &str =
        "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you \
                           don't know what your problem is.\n";
    const GO_PETER_SIGNATURE_LINE: &str = "— PeterNeumann \
         x08go/ZJkuBS9UG/\
         SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const GO_ENOCH_SIGNATURE_LINE: &str = "— EnochRoot \
                                           rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/\
                                           5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

    fn go_peter_signing_key() -> SigningKey {
        let typed = BASE64.decode(GO_PETER_SIGNER_KEY_BASE64).unwrap();
        assert_eq!(typed[0], ED25519_SIGNATURE_TYPE);
        SigningKey::from_bytes(&typed[1..].try_into().unwrap())
    }

    fn go_peter() -> NoteVerifier {
        NoteVerifier::from_verifier_key_string(GO_PETER_VERIFIER_KEY).unwrap()
    }

    fn go_enoch() -> NoteVerifier {
        NoteVerifier::from_verifier_key_string(GO_ENOCH_VERIFIER_KEY).unwrap()
    }

    #[test]
    fn signing_reproduces_the_go_note_package_vector() {
        let key = go_peter_signing_key();
        let note = sign_note(GO_TEXT, &[("PeterNeumann", &key)]).unwrap();
        assert_eq!(note, format!("{GO_TEXT}\n{GO_PETER_SIGNATURE_LINE}"));
        assert_eq!(
            verifier_key_string("PeterNeumann", &key.verifying_key()).unwrap(),
            GO_PETER_VERIFIER_KEY
        );
        assert_eq!(
            key_id("PeterNeumann", &key.verifying_key()),
            [0xc7, 0x4f, 0x20, 0xa3]
        );
        assert_eq!(go_peter().verifying_key(), &key.verifying_key());
    }

    #[test]
    fn opening_the_go_two_signature_note_accepts_either_known_key() {
        let note = format!("{GO_TEXT}\n{GO_PETER_SIGNATURE_LINE}{GO_ENOCH_SIGNATURE_LINE}");
        let peter = NoteSigner {
            name: "PeterNeumann".into(),
            key_id: [0xc7, 0x4f, 0x20, 0xa3],
        };
        let enoch = NoteSigner {
            name: "EnochRoot".into(),
            key_id: [0xaf, 0x0c, 0xfe, 0x78],
        };

        let opened = open_note(&note, &[go_peter()]).unwrap();
        assert_eq!(opened.text, GO_TEXT);
        assert_eq!(opened.verified_by, vec![peter.clone()]);
        assert_eq!(opened.unknown_signature_count, 1);

        let opened = open_note(&note, &[go_enoch()]).unwrap();
        assert_eq!(opened.verified_by, vec![enoch.clone()]);

        let opened = open_note(&note, &[go_enoch(), go_peter()]).unwrap();
        assert_eq!(opened.verified_by, vec![peter, enoch]);
        assert_eq!(opened.unknown_signature_count, 0);

        assert_eq!(
            open_note(&note, &[]),
            Err(CheckpointError::NoKnownSignature)
        );
    }

    #[test]
    fn go_bad_notes_are_refused() {
        let peter_signature = GO_PETER_SIGNATURE_LINE;
        let corrupted_signature =
            format!("{}ABCD{}", &peter_signature[..60], &peter_signature[60..]);
        assert_eq!(
            open_note(&format!("{GO_TEXT}\n{corrupted_signature}"), &[go_peter()]),
            Err(CheckpointError::InvalidSignature {
                name: "PeterNeumann".into(),
                key_id: "c74f20a3".into()
            })
        );
        assert_eq!(
            open_note(
                &format!("{GO_TEXT}\n{}", peter_signature.repeat(101)),
                &[go_peter()]
            ),
            Err(CheckpointError::TooManySignatures)
        );
        assert!(open_note(
            &format!("{GO_TEXT}\n{}", peter_signature.repeat(100)),
            &[go_peter()]
        )
        .is_ok());
        let bad_notes = [
            GO_TEXT.to_owned(),
            format!("{GO_TEXT}\n"),
            format!(
                "{GO_TEXT}\n{}",
                &peter_signature[..peter_signature.len() - 1]
            ),
            format!("\u{1}{GO_TEXT}\n{peter_signature}"),
            format!(
                "{GO_TEXT}\n— Bad Name \
                 x08go/ZJkuBS9UG/\
                 SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
            ),
            format!("{GO_TEXT}\n{peter_signature}Unexpected line.\n"),
        ];
        for bad_note in bad_notes {
            assert!(open_note(&bad_note, &[go_peter()]).is_err(), "{bad_note:?}");
        }
    }

    #[test]
    fn every_mangling_of_the_go_verifier_key_is_refused() {
        let key = GO_PETER_VERIFIER_KEY.as_bytes();
        for start in 0..=key.len() {
            for end in start + 1..=key.len() {
                if (start, end) != (0, key.len()) {
                    let part = std::str::from_utf8(&key[start..end]).unwrap();
                    assert!(
                        NoteVerifier::from_verifier_key_string(part).is_err(),
                        "{part}"
                    );
                }
            }
        }
        for position in 0..key.len() {
            let mut mangled = key.to_vec();
            mangled[position] += 1;
            let mangled = String::from_utf8(mangled).unwrap();
            assert!(
                NoteVerifier::from_verifier_key_string(&mangled).is_err(),
                "{mangled}"
            );
        }
        // Go's own extra cases: a key of the wrong length and an unknown algorithm, each with a
        // key ID recomputed to match.
        let wrong_length =
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==";
        let unknown_algorithm =
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        assert!(NoteVerifier::from_verifier_key_string(wrong_length).is_err());
        assert!(NoteVerifier::from_verifier_key_string(unknown_algorithm).is_err());
    }

    // -----------------------------------------------------------------------------------------
    // Known answers for checkpoints, computed independently with Python's `cryptography`
    // package and hashlib (the same script reproduces the Go vector above byte for byte):
    // first key seed = bytes 0..32, second key seed = SHA-256("second signing key"),
    // root = SHA-256("root"), origin "ledger.example/books/main", size 1234567.

    const KAT_ORIGIN: &str = "ledger.example/books/main";
    const KAT_SIZE: u64 = 1_234_567;
    const KAT_FIRST_VERIFIER_KEY: &str =
        "ledger.example/books/main+9baf82cf+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
    const KAT_SECOND_VERIFIER_KEY: &str =
        "ledger.example/books/main+5d013082+AQ+9+YzN1YSzMmFJDJ6vzQ9y9aBQhopk+Hq61Gomrz+0";
    const KAT_BODY: &str =
        "ledger.example/books/main\n1234567\nSBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=\n";
    const KAT_FIRST_SIGNATURE_LINE: &str = "— ledger.example/books/main \
                                            m6+Cz/BMsW7ueOqfC6a9qGGwHxTsIBtX44vYfgEjDZ+UoBiWtyEn\
                                            59FiGKoVQYECKsYHh9lY9wgDDF990A0CoIaTGgo=\n";
    const KAT_SECOND_SIGNATURE_LINE: &str = "— ledger.example/books/main \
                                             XQEwglk/9n2fiAPnN4+rkvR2SkY5sBe45NVteiUkZX456lBDwc/\
                                             rimac7Gm/jWu0dinYd4tMbNC+EMn0+YCtylC0EQo=\n";

    fn kat_first_key() -> SigningKey {
        let seed: Vec<u8> = (0u8..32).collect();
        SigningKey::from_bytes(&seed.try_into().unwrap())
    }

    fn kat_second_key() -> SigningKey {
        SigningKey::from_bytes(&Hash32::sha256(b"second signing key").0)
    }

    fn kat_root() -> Hash32 {
        Hash32::sha256(b"root")
    }

    fn kat_verifier(key: &SigningKey) -> NoteVerifier {
        NoteVerifier::new(KAT_ORIGIN, key.verifying_key()).unwrap()
    }

    fn kat_checkpoint() -> Checkpoint {
        Checkpoint {
            origin: KAT_ORIGIN.into(),
            size: KAT_SIZE,
            root: kat_root(),
            extensions: vec![],
        }
    }

    #[test]
    fn a_signed_checkpoint_matches_the_independently_computed_note() {
        let note = sign_checkpoint(KAT_ORIGIN, KAT_SIZE, &kat_root(), &kat_first_key()).unwrap();
        assert_eq!(note, format!("{KAT_BODY}\n{KAT_FIRST_SIGNATURE_LINE}"));
        assert_eq!(kat_checkpoint().to_note_text().unwrap(), KAT_BODY);
    }

    #[test]
    fn key_ids_and_verifier_strings_match_a_by_hand_computation() {
        for (key, expected_string) in [
            (kat_first_key(), KAT_FIRST_VERIFIER_KEY),
            (kat_second_key(), KAT_SECOND_VERIFIER_KEY),
        ] {
            let public = key.verifying_key();
            let mut preimage = KAT_ORIGIN.as_bytes().to_vec();
            preimage.push(b'\n');
            preimage.push(0x01);
            preimage.extend_from_slice(public.as_bytes());
            let by_hand = Sha256::digest(&preimage);
            assert_eq!(key_id(KAT_ORIGIN, &public), by_hand[..4]);
            assert_eq!(
                verifier_key_string(KAT_ORIGIN, &public).unwrap(),
                expected_string
            );
            let parsed = NoteVerifier::from_verifier_key_string(expected_string).unwrap();
            assert_eq!(parsed, kat_verifier(&key));
            assert_eq!(parsed.to_verifier_key_string(), expected_string);
        }
    }

    #[test]
    fn a_checkpoint_signed_by_two_keys_opens_with_either_key() {
        let note =
            sign_checkpoint_with_keys(&kat_checkpoint(), &[&kat_first_key(), &kat_second_key()])
                .unwrap();
        assert_eq!(
            note,
            format!("{KAT_BODY}\n{KAT_FIRST_SIGNATURE_LINE}{KAT_SECOND_SIGNATURE_LINE}")
        );
        let first = kat_verifier(&kat_first_key());
        let second = kat_verifier(&kat_second_key());
        for known in [
            vec![first.clone()],
            vec![second.clone()],
            vec![second, first],
        ] {
            assert_eq!(
                open_checkpoint(&note, KAT_ORIGIN, &known),
                Ok(kat_checkpoint())
            );
        }
    }

    #[test]
    fn sign_then_open_round_trips_with_extension_lines() {
        let checkpoint = Checkpoint {
            origin: "example.com/log42".into(),
            size: 0,
            root: Hash32::sha256(b""),
            extensions: vec!["first extension".into(), "— looks like a signature".into()],
        };
        let key = kat_first_key();
        let note = sign_checkpoint_with_keys(&checkpoint, &[&key]).unwrap();
        let known = [NoteVerifier::new("example.com/log42", key.verifying_key()).unwrap()];
        assert_eq!(
            open_checkpoint(&note, "example.com/log42", &known),
            Ok(checkpoint)
        );
    }

    #[test]
    fn a_checkpoint_states_when_it_was_signed_in_an_extension_line() {
        let at = Timestamp::from_unix_micros(1_795_000_000_004_000);
        let note =
            sign_checkpoint_at(KAT_ORIGIN, KAT_SIZE, &kat_root(), at, &kat_first_key()).unwrap();
        assert!(note.starts_with(&format!(
            "{KAT_BODY}signed_at 2026-11-18T11:06:40.004000Z\n\n"
        )));
        let known = [kat_verifier(&kat_first_key())];
        let opened = open_checkpoint_with_signers(&note, KAT_ORIGIN, &known).unwrap();
        assert_eq!(opened.checkpoint.signed_at(), Ok(Some(at)));
        assert_eq!(opened.signed_by[0].key_id, known[0].key_id());
        assert_eq!(kat_checkpoint().signed_at(), Ok(None));
        for extensions in [
            vec!["signed_at 2026-11-18T11:06:40Z".to_owned()],
            vec![
                "signed_at 2026-11-18T11:06:40.004000Z".to_owned(),
                "signed_at 2026-11-18T11:06:40.004000Z".to_owned(),
            ],
        ] {
            let checkpoint = Checkpoint {
                extensions,
                ..kat_checkpoint()
            };
            assert!(checkpoint.signed_at().is_err());
        }
    }

    #[test]
    fn tampered_size_root_origin_or_signature_is_rejected() {
        let note = sign_checkpoint(KAT_ORIGIN, KAT_SIZE, &kat_root(), &kat_first_key()).unwrap();
        let known = [kat_verifier(&kat_first_key())];
        assert!(open_checkpoint(&note, KAT_ORIGIN, &known).is_ok());

        let other_size = note.replacen("1234567", "1234568", 1);
        let other_root = note.replacen("SBNJ", "SBNK", 1);
        let other_origin = note.replacen(
            "ledger.example/books/main\n",
            "ledger.example/books/mail\n",
            1,
        );
        let other_signature = note.replacen("UoBiWty", "UoBiWtz", 1);
        for tampered in [other_size, other_root, other_origin, other_signature] {
            assert_ne!(tampered, note);
            assert!(matches!(
                open_checkpoint(&tampered, KAT_ORIGIN, &known),
                Err(CheckpointError::InvalidSignature { .. })
            ));
        }
        // The key ID is part of the signature's base64: changing it makes the key unknown.
        let other_key_id = note.replacen("m6+Cz/BM", "m7+Cz/BM", 1);
        assert_eq!(
            open_checkpoint(&other_key_id, KAT_ORIGIN, &known),
            Err(CheckpointError::NoKnownSignature)
        );
        assert_eq!(
            open_checkpoint(&note, "ledger.example/books/other", &known),
            Err(CheckpointError::WrongOrigin {
                found: KAT_ORIGIN.into(),
                expected: "ledger.example/books/other".into()
            })
        );
    }

    #[test]
    fn a_note_signed_by_a_different_key_is_rejected() {
        let note = sign_checkpoint(KAT_ORIGIN, KAT_SIZE, &kat_root(), &kat_second_key()).unwrap();
        let only_first = [kat_verifier(&kat_first_key())];
        assert_eq!(
            open_checkpoint(&note, KAT_ORIGIN, &only_first),
            Err(CheckpointError::NoKnownSignature)
        );
        // Same key, other name: a different key ID, so still unknown.
        let renamed =
            [NoteVerifier::new("someone.else/log", kat_second_key().verifying_key()).unwrap()];
        assert_eq!(
            open_checkpoint(&note, KAT_ORIGIN, &renamed),
            Err(CheckpointError::NoKnownSignature)
        );
        // A forged line claiming the known key's name and ID with another key's signature.
        let forged_line = KAT_SECOND_SIGNATURE_LINE.replacen("XQEwgl", "m6+Czw", 1);
        let forged = format!("{KAT_BODY}\n{forged_line}");
        assert!(matches!(
            open_checkpoint(&forged, KAT_ORIGIN, &only_first),
            Err(CheckpointError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn two_different_known_keys_under_one_name_and_id_are_refused() {
        let note = sign_checkpoint(KAT_ORIGIN, KAT_SIZE, &kat_root(), &kat_first_key()).unwrap();
        let first = kat_verifier(&kat_first_key());
        let impostor = NoteVerifier {
            key: kat_second_key().verifying_key(),
            ..first.clone()
        };
        assert!(matches!(
            open_checkpoint(&note, KAT_ORIGIN, &[first.clone(), impostor]),
            Err(CheckpointError::AmbiguousKnownKey { .. })
        ));
        assert!(open_checkpoint(&note, KAT_ORIGIN, &[first.clone(), first]).is_ok());
    }

    #[test]
    fn checkpoint_bodies_are_parsed_strictly() {
        let root = "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=";
        let good = format!("o\n12\n{root}\n");
        assert!(Checkpoint::from_note_text(&good).is_ok());
        let bad_bodies = [
            format!("\n12\n{root}\n"),
            format!("o\n012\n{root}\n"),
            format!("o\n+12\n{root}\n"),
            format!("o\n-12\n{root}\n"),
            format!("o\n 12\n{root}\n"),
            format!("o\n\n{root}\n"),
            format!("o\n18446744073709551616\n{root}\n"),
            format!("o\n12\n{root}"),
            format!("o\n12\n{}\n", root.trim_end_matches('=')),
            "o\n12\nSBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7J=\n".to_owned(),
            format!("o\n12\n{}\n", BASE64.encode([7u8; 31])),
            format!("o\n12\n{}\n", BASE64.encode([7u8; 33])),
            format!("o\n12\n{root}\n\nextension after an empty line\n"),
            format!("o\n12\n{root}\r\n"),
            "o\n12\n".to_owned(),
            String::new(),
        ];
        for body in bad_bodies {
            assert!(Checkpoint::from_note_text(&body).is_err(), "{body:?}");
        }
        assert_eq!(
            Checkpoint::from_note_text(&format!("o\n0\n{root}\n"))
                .unwrap()
                .size,
            0
        );
        assert_eq!(
            Checkpoint::from_note_text(&format!("o\n18446744073709551615\n{root}\n"))
                .unwrap()
                .size,
            u64::MAX
        );
    }

    #[test]
    fn the_c2sp_example_checkpoint_parses_and_its_unknown_key_is_ignored() {
        let example = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/\
                       Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa \
                       Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/\
                       Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
        let (text, lines) = split_note(example).unwrap();
        let checkpoint = Checkpoint::from_note_text(text).unwrap();
        assert_eq!(checkpoint.origin, "example.com/behind-the-sofa");
        assert_eq!(checkpoint.size, 20_852_163);
        assert!(checkpoint.extensions.is_empty());
        let line = parse_signature_line(lines[0]).unwrap();
        assert_eq!(line.name, "example.com/behind-the-sofa");
        assert_eq!(line.signature.len(), ED25519_SIGNATURE_BYTES);
        let unrelated = [NoteVerifier::new(
            "example.com/behind-the-sofa",
            kat_first_key().verifying_key(),
        )
        .unwrap()];
        assert_eq!(
            open_checkpoint(example, "example.com/behind-the-sofa", &unrelated),
            Err(CheckpointError::NoKnownSignature)
        );
    }

    #[test]
    fn oversized_notes_control_characters_and_bad_names_are_refused() {
        let key = kat_first_key();
        let known = [kat_verifier(&key)];
        let huge = format!(
            "{}\n\n{}",
            "a".repeat(MAX_NOTE_BYTES),
            KAT_FIRST_SIGNATURE_LINE
        );
        assert_eq!(
            open_note(&huge, &known),
            Err(CheckpointError::NoteTooLarge { size: huge.len() })
        );
        assert!(sign_note(
            &format!("{}\n", "a".repeat(MAX_NOTE_BYTES)),
            &[(KAT_ORIGIN, &key)]
        )
        .is_err());
        let with_tab = format!("{}\t\n\n{}", KAT_BODY.trim_end(), KAT_FIRST_SIGNATURE_LINE);
        assert_eq!(
            open_note(&with_tab, &known),
            Err(CheckpointError::ControlCharacter)
        );
        assert_eq!(
            sign_note("no newline", &[(KAT_ORIGIN, &key)]),
            Err(CheckpointError::NoteTextNotTerminated)
        );
        assert_eq!(
            sign_note("", &[(KAT_ORIGIN, &key)]),
            Err(CheckpointError::NoteTextNotTerminated)
        );
        for bad_name in ["", "a b", "a+b", "a\u{a0}b", "a\tb", "a\nb"] {
            assert!(!is_valid_key_name(bad_name));
            assert!(
                sign_checkpoint(bad_name, 1, &kat_root(), &key).is_err(),
                "{bad_name:?}"
            );
            assert!(
                verifier_key_string(bad_name, &key.verifying_key()).is_err(),
                "{bad_name:?}"
            );
        }
        assert!(is_valid_key_name("ledger.example/books/main"));
        assert!(is_valid_key_name("ünïcödé"));
    }

    #[test]
    fn malformed_signature_blocks_are_refused() {
        let known = [kat_verifier(&kat_first_key())];
        let line = KAT_FIRST_SIGNATURE_LINE;
        let bad_notes = [
            format!("{KAT_BODY}\n"),
            format!("{KAT_BODY}\n\n"),
            format!("{KAT_BODY}\n{}", line.trim_end()),
            format!("{KAT_BODY}\n{}", line.replacen('—', "-", 1)),
            format!("{KAT_BODY}\n{}", line.replacen("— ", "—  ", 1)),
            format!("{KAT_BODY}\n{}", line.replacen('=', "", 1)),
            format!("{KAT_BODY}\n— {KAT_ORIGIN} AAAAAA==\n"),
            format!("{KAT_BODY}\n— {KAT_ORIGIN}\n"),
            format!("{KAT_BODY}\n{line}\n{line}"),
            format!("{KAT_BODY}{line}"),
        ];
        for bad_note in bad_notes {
            assert!(open_note(&bad_note, &known).is_err(), "{bad_note:?}");
        }
    }

    proptest! {
        #[test]
        fn opening_arbitrary_text_never_panics(text in any::<String>()) {
            let _ = open_checkpoint(&text, KAT_ORIGIN, &[kat_verifier(&kat_first_key())]);
            let _ = NoteVerifier::from_verifier_key_string(&text);
            let _ = Checkpoint::from_note_text(&text);
        }

        #[test]
        fn changing_any_byte_of_a_signed_checkpoint_makes_it_fail(
            size in any::<u64>(), position_fraction in 0.0f64..1.0, new_byte in 0u8..128,
        ) {
            let key = kat_first_key();
            let note = sign_checkpoint(KAT_ORIGIN, size, &kat_root(), &key).unwrap();
            let known = [kat_verifier(&key)];
            prop_assert!(open_checkpoint(&note, KAT_ORIGIN, &known).is_ok());
            let mut bytes = note.clone().into_bytes();
            let position = ((bytes.len() as f64) * position_fraction) as usize;
            prop_assume!(bytes[position] != new_byte);
            bytes[position] = new_byte;
            if let Ok(tampered) = String::from_utf8(bytes) {
                prop_assert!(
                    open_checkpoint(&tampered, KAT_ORIGIN, &known).is_err(),
                    "{:?}",
                    tampered
                );
            }
        }
    }
}
