//! `ledger witness`: a witness any auditor runs on their own machine, with their own Ed25519
//! key and a local state file (docs/AUDIT_FORMAT.md §3.1).
//!
//! Each round it fetches the ledger's latest checkpoint, opens it under the log's key (its
//! origin must be the ledger's), and holds it to the last checkpoint it verified:
//!
//! - none yet: trust on first use, recorded as such in the state;
//! - the same size and root: nothing new (co-signed already, or co-signed now if the last post
//!   failed);
//! - a larger size: the service's RFC 9162 consistency proof from the size it saw must verify
//!   between the root it kept and the new root;
//! - a smaller size: refused (a rollback), nothing co-signed;
//! - the same size with another root, or a consistency proof that fails: a **fork**. The witness
//!   co-signs nothing, writes both notes (and the proof) next to the state file as evidence,
//!   records the fork in the state (later rounds refuse at once until an operator removes it) and
//!   exits with [`EXIT_FORK`].
//!
//! Otherwise it records the new checkpoint in the state file (written to a temporary file and
//! renamed over the old one, so a crash leaves the old state or the new one), co-signs it
//! (C2SP `tlog-cosignature`, [`crate::audit::cosignature`]) and posts the co-signed note to
//! `POST /v1/ledgers/{ledger}/checkpoint/cosignatures`. The state is written before the
//! cosignature leaves the machine, so the witness never co-signs a tree it did not record.
//!
//! Exit codes: [`EXIT_OK`] 0, [`EXIT_ERROR`] 1 (network, an answer that does not verify, a
//! rollback, an unreadable state), [`EXIT_USAGE`] 2 (bad arguments or key files), [`EXIT_FORK`]
//! 3. Without `--once` the witness keeps polling through errors and stops on a fork.
//!
//! The shell is this file; what it decides from what it fetched is [`judge`], pure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::audit::checkpoint::{open_checkpoint_with_signers, Checkpoint, NoteVerifier};
use crate::audit::cosignature::{cosign_note, Cosignature, WitnessKey};
use crate::audit::merkle::verify_consistency;
use crate::audit::time::parse_timestamp;
use crate::audit::verify::TrustedKey;
use crate::audit::Hash32;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_FORK: u8 = 3;

/// The `format` of the state file.
pub const STATE_FORMAT: &str = "ledger-witness-state/1";

// ---------------------------------------------------------------------------------------------
// Configuration.

/// The log's keys: every key it may sign checkpoints with (with their times of service, from
/// `GET /v1/keys`), and the origin when the key says it (a C2SP vkey, or `note_verifier_key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogKeys {
    pub keys: Vec<TrustedKey>,
    pub origin: Option<String>,
}

/// What a witness needs.
#[derive(Clone, Debug)]
pub struct WitnessConfig {
    /// `http://host:port`, without a trailing slash.
    pub base_url: String,
    pub ledger: String,
    /// An API key of the `auditor` role covering the ledger.
    pub api_key: String,
    pub log_keys: LogKeys,
    /// The origin the checkpoints must have; else the log key's, else the one first seen
    /// (which must end with `/<ledger>`).
    pub origin: Option<String>,
    pub witness_key: SigningKey,
    /// The witness's key name (its vkey's name).
    pub name: String,
    pub state_path: PathBuf,
    /// Ask for a checkpoint of the tree as it is now (`?fresh=true`) rather than the latest
    /// issued.
    pub fresh: bool,
}

impl WitnessConfig {
    /// The witness's verifier key, to give to the clients that count its cosignatures.
    pub fn witness_vkey(&self) -> Result<String, String> {
        WitnessKey::new(&self.name, self.witness_key.verifying_key())
            .map(|key| key.to_vkey())
            .map_err(|error| format!("--name: {error}"))
    }
}

/// `--log-key`: a file or the text itself: a PEM public key, the base64 of the 32-byte key, the
/// JSON of `GET /v1/keys` (every key, with `valid_from` / `retired_at`; with `?ledger=` each
/// has its `note_verifier_key`, which names the origin), or a C2SP vkey
/// (`<origin>+<key ID>+<base64(0x01 ‖ key)>`).
pub fn read_log_keys(argument: &str) -> Result<LogKeys, String> {
    let path = Path::new(argument);
    let text = if path.is_file() {
        std::fs::read_to_string(path).map_err(|error| format!("--log-key {argument}: {error}"))?
    } else {
        argument.to_owned()
    };
    parse_log_keys(text.trim()).map_err(|error| format!("--log-key {argument}: {error}"))
}

/// The text of `--log-key` (see [`read_log_keys`]).
pub fn parse_log_keys(text: &str) -> Result<LogKeys, String> {
    if text.starts_with('[') || text.starts_with('{') {
        return keys_from_json(text);
    }
    if text.starts_with("-----BEGIN") {
        let key = VerifyingKey::from_public_key_pem(text)
            .map_err(|error| format!("not an Ed25519 public key PEM: {error}"))?;
        return Ok(LogKeys {
            keys: vec![TrustedKey::new(key)],
            origin: None,
        });
    }
    if let Ok(key) = base64_key(text) {
        return Ok(LogKeys {
            keys: vec![TrustedKey::new(key)],
            origin: None,
        });
    }
    let verifier = NoteVerifier::from_verifier_key_string(text).map_err(|error| {
        format!(
            "neither a PEM file, the base64 of a key, the JSON of GET /v1/keys nor a vkey: {error}"
        )
    })?;
    Ok(LogKeys {
        keys: vec![TrustedKey::new(*verifier.verifying_key())],
        origin: Some(verifier.name().to_owned()),
    })
}

fn base64_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = BASE64
        .decode(text)
        .map_err(|_| "not base64".to_owned())?
        .try_into()
        .map_err(|_| "not 32 bytes".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 key".to_owned())
}

fn keys_from_json(text: &str) -> Result<LogKeys, String> {
    let value: Value = serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let entries = match value {
        Value::Array(entries) => entries,
        object @ Value::Object(_) => vec![object],
        _ => return Err("expected the array of GET /v1/keys".into()),
    };
    let time = |entry: &Value, field: &str| match &entry[field] {
        Value::Null => Ok(None),
        Value::String(text) => parse_timestamp(text)
            .map(Some)
            .ok_or_else(|| format!("{field} {text:?} is not an RFC 3339 UTC time")),
        _ => Err(format!("{field} must be a string or null")),
    };
    let mut keys = Vec::new();
    let mut origin: Option<String> = None;
    for entry in &entries {
        let key = match (
            entry["public_key"].as_str(),
            entry["public_key_pem"].as_str(),
        ) {
            (Some(text), _) => base64_key(text).map_err(|error| format!("public_key: {error}"))?,
            (None, Some(pem)) => VerifyingKey::from_public_key_pem(pem)
                .map_err(|error| format!("public_key_pem: {error}"))?,
            (None, None) => return Err("a key without public_key or public_key_pem".into()),
        };
        if let Some(vkey) = entry["note_verifier_key"].as_str() {
            let verifier = NoteVerifier::from_verifier_key_string(vkey)
                .map_err(|error| format!("note_verifier_key: {error}"))?;
            if *verifier.verifying_key() != key {
                return Err("a note_verifier_key is not of its entry's key".into());
            }
            match &origin {
                Some(known) if known != verifier.name() => {
                    return Err("the note verifier keys name different origins".into())
                }
                _ => origin = Some(verifier.name().to_owned()),
            }
        }
        keys.push(TrustedKey {
            valid_from: time(entry, "valid_from")?,
            retired_at: time(entry, "retired_at")?,
            ..TrustedKey::new(key)
        });
    }
    if keys.is_empty() {
        return Err("the key list is empty".into());
    }
    Ok(LogKeys { keys, origin })
}

// ---------------------------------------------------------------------------------------------
// The state file.

/// The witness's memory of the log: the last checkpoint it verified, how, and what it co-signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessState {
    pub format: String,
    pub origin: String,
    /// The last checkpoint verified: its size, its root (hex) and the note as served.
    pub tree_size: u64,
    pub root: String,
    pub note: String,
    /// How it was verified: `first_use` (trusted on first use) or `consistency_proof` (proven to
    /// extend the one kept before it).
    pub verified_by: String,
    /// The checkpoint trusted on first use: everything after it is proven from it.
    pub first_use: FirstUse,
    /// The cosignature the service accepted for `tree_size`, if it did.
    pub cosigned: Option<CosignedRecord>,
    /// Set when a fork was detected: the witness refuses to go on until it is removed.
    pub fork: Option<ForkRecord>,
    /// Seconds since the Unix epoch.
    pub updated_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstUse {
    pub tree_size: u64,
    pub root: String,
    pub at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosignedRecord {
    pub tree_size: u64,
    pub timestamp: u64,
    /// The signature line posted.
    pub line: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForkRecord {
    pub detected_at: u64,
    pub reason: String,
    /// The files written next to the state file: the note kept, the note served, the proof.
    pub evidence: Vec<String>,
}

impl WitnessState {
    fn root_hash(&self) -> Result<Hash32, String> {
        Hash32::from_hex(&self.root)
            .ok_or_else(|| format!("the state's root {:?} is not 64 hex digits", self.root))
    }
}

/// The state file, or `None` when it does not exist yet.
pub fn load_state(path: &Path) -> Result<Option<WitnessState>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("state file {}: {error}", path.display())),
    };
    let state: WitnessState = serde_json::from_str(&text)
        .map_err(|error| format!("state file {}: {error}", path.display()))?;
    if state.format != STATE_FORMAT {
        return Err(format!(
            "state file {}: format {:?}, expected {STATE_FORMAT:?}",
            path.display(),
            state.format
        ));
    }
    state.root_hash()?;
    Ok(Some(state))
}

/// Writes the file atomically: a temporary file in the same folder, synced, renamed over it.
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let error = |what: &str, error: std::io::Error| format!("{what} {}: {error}", path.display());
    let mut temporary =
        tempfile::NamedTempFile::new_in(&folder).map_err(|e| error("cannot write next to", e))?;
    temporary
        .write_all(contents)
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(|e| error("cannot write", e))?;
    temporary
        .persist(path)
        .map_err(|e| error("cannot replace", e.error))?;
    if let Ok(directory) = std::fs::File::open(&folder) {
        let _ = directory.sync_all();
    }
    Ok(())
}

pub fn save_state(path: &Path, state: &WitnessState) -> Result<(), String> {
    let mut text = serde_json::to_vec_pretty(state).expect("the state serialises");
    text.push(b'\n');
    write_atomically(path, &text)
}

// ---------------------------------------------------------------------------------------------
// The decision, pure.

/// What the witness makes of a verified checkpoint, given the last one it kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing kept yet: trusted on first use.
    FirstUse,
    /// The checkpoint kept, again.
    Same,
    /// Larger: a consistency proof from the kept size is needed (fetch it, judge again).
    NeedsProof { from_size: u64, to_size: u64 },
    /// Larger, and the proof verified.
    Extends,
    /// Smaller than the one kept: refused.
    Rollback { kept_size: u64 },
    /// Two roots for one size, or a proof that fails.
    Fork(String),
}

/// Judges the checkpoint `(size, root)` against the kept one; `proof` is the service's
/// consistency proof from the kept size to `size`, once fetched.
pub fn judge(
    kept: Option<(u64, Hash32)>,
    size: u64,
    root: &Hash32,
    proof: Option<&[Hash32]>,
) -> Verdict {
    let Some((kept_size, kept_root)) = kept else {
        return Verdict::FirstUse;
    };
    if size < kept_size {
        return Verdict::Rollback { kept_size };
    }
    if size == kept_size {
        return if *root == kept_root {
            Verdict::Same
        } else {
            Verdict::Fork(format!(
                "two roots for tree size {size}: {kept_root} (kept) and {root} (served now)"
            ))
        };
    }
    let Some(proof) = proof else {
        return Verdict::NeedsProof {
            from_size: kept_size,
            to_size: size,
        };
    };
    match verify_consistency(kept_size, size, &kept_root, root, proof) {
        Ok(()) => Verdict::Extends,
        Err(error) => Verdict::Fork(format!(
            "the consistency proof from tree size {kept_size} (root {kept_root}) to {size} (root \
             {root}) fails: {error}"
        )),
    }
}

/// The origin a checkpoint must have: the one given, the one kept, the log key's; else the
/// note's own, if it is `<prefix>/<ledger>`.
fn expected_origin(
    config: &WitnessConfig,
    state: Option<&WitnessState>,
    note: &str,
) -> Result<String, String> {
    let origin = config
        .origin
        .clone()
        .or_else(|| state.map(|state| state.origin.clone()))
        .or_else(|| config.log_keys.origin.clone())
        .unwrap_or_else(|| note.split('\n').next().unwrap_or_default().to_owned());
    let suffix = format!("/{}", config.ledger);
    match origin.strip_suffix(&suffix) {
        Some(prefix) if !prefix.is_empty() => Ok(origin),
        _ => Err(format!(
            "the origin {origin:?} is not that of the ledger {:?} (<prefix>/{})",
            config.ledger, config.ledger
        )),
    }
}

/// Opens the note under the log's keys with the expected origin, and holds its `signed_at` to
/// the signing key's time of service when the keys state one.
pub fn open_log_checkpoint(
    note: &str,
    origin: &str,
    keys: &[TrustedKey],
) -> Result<Checkpoint, String> {
    let verifiers = keys
        .iter()
        .map(|key| NoteVerifier::new(origin, key.key))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("origin {origin:?}: {error}"))?;
    let opened = open_checkpoint_with_signers(note, origin, &verifiers)
        .map_err(|error| format!("the checkpoint does not verify under the log's key: {error}"))?;
    let signed_at = opened
        .checkpoint
        .signed_at()
        .map_err(|error| format!("the checkpoint is malformed: {error}"))?;
    if let Some(at) = signed_at {
        let in_service = opened.signed_by.iter().any(|signer| {
            keys.iter()
                .zip(&verifiers)
                .any(|(key, verifier)| verifier.key_id() == signer.key_id && key.was_valid_at(at))
        });
        if !in_service {
            return Err(format!(
                "key_not_valid: the checkpoint was signed at {} by no key in service then",
                crate::audit::time::format_timestamp(at)
            ));
        }
    }
    Ok(opened.checkpoint)
}

// ---------------------------------------------------------------------------------------------
// A round.

/// How a round ended well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoundOutcome {
    /// A checkpoint was verified (on first use or by a consistency proof, or seen before but not
    /// co-signed yet), co-signed and accepted by the service (`status` 201, or 200 when it had
    /// this witness's cosignature already).
    Cosigned {
        tree_size: u64,
        root: Hash32,
        verified_by: &'static str,
        cosignature: Cosignature,
        status: u16,
    },
    /// The checkpoint co-signed last time, again: nothing to do.
    Unchanged { tree_size: u64 },
}

/// How a round ended badly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WitnessError {
    /// A fork: nothing co-signed; the evidence files.
    Fork {
        reason: String,
        evidence: Vec<PathBuf>,
    },
    /// Anything else (network, an answer that does not verify, a rollback, a state file that
    /// cannot be read or written): nothing co-signed.
    Failed(String),
}

impl WitnessError {
    pub fn exit_code(&self) -> u8 {
        match self {
            WitnessError::Fork { .. } => EXIT_FORK,
            WitnessError::Failed(_) => EXIT_ERROR,
        }
    }
}

impl std::fmt::Display for WitnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WitnessError::Fork { reason, evidence } => {
                let files: Vec<String> = evidence
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect();
                write!(f, "FORK: {reason}; evidence kept in {}", files.join(", "))
            }
            WitnessError::Failed(message) => f.write_str(message),
        }
    }
}

fn failed(message: impl Into<String>) -> WitnessError {
    WitnessError::Failed(message.into())
}

/// The HTTP client a witness uses: bounded connection and request times.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))
}

/// The body of a successful answer, else an error naming the problem code.
async fn answer_text(
    response: Result<reqwest::Response, reqwest::Error>,
    what: &str,
) -> Result<(u16, String), WitnessError> {
    let response = response.map_err(|error| failed(format!("{what}: {error}")))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|error| failed(format!("{what}: reading the answer: {error}")))?;
    if !(200..300).contains(&status) {
        let problem: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        return Err(failed(format!(
            "{what}: {status} {} {}",
            problem["code"].as_str().unwrap_or(""),
            problem["detail"].as_str().unwrap_or(text.as_str())
        )));
    }
    Ok((status, text))
}

fn ledger_url(config: &WitnessConfig, rest: &str) -> String {
    format!(
        "{}/v1/ledgers/{}{rest}",
        config.base_url.trim_end_matches('/'),
        config.ledger
    )
}

async fn fetch_checkpoint(
    config: &WitnessConfig,
    client: &reqwest::Client,
) -> Result<String, WitnessError> {
    let query = if config.fresh { "?fresh=true" } else { "" };
    let response = client
        .get(ledger_url(config, &format!("/checkpoint{query}")))
        .bearer_auth(&config.api_key)
        .send()
        .await;
    Ok(answer_text(response, "GET checkpoint").await?.1)
}

/// The service's consistency proof, as it answered it (for evidence) and its hashes.
async fn fetch_consistency_proof(
    config: &WitnessConfig,
    client: &reqwest::Client,
    from_size: u64,
    to_size: u64,
) -> Result<(String, Vec<Hash32>), WitnessError> {
    let response = client
        .get(ledger_url(
            config,
            &format!("/proofs/consistency?from_size={from_size}&to_size={to_size}"),
        ))
        .bearer_auth(&config.api_key)
        .send()
        .await;
    let (_, text) = answer_text(response, "GET consistency proof").await?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|error| failed(format!("the consistency proof is not JSON: {error}")))?;
    if value["from_size"].as_u64() != Some(from_size) || value["to_size"].as_u64() != Some(to_size)
    {
        return Err(failed(format!(
            "asked for the consistency proof from {from_size} to {to_size}, got one from {} to {}",
            value["from_size"], value["to_size"]
        )));
    }
    let proof = value["proof"]
        .as_array()
        .ok_or_else(|| failed("the consistency proof has no array \"proof\""))?
        .iter()
        .map(|hash| hash.as_str().and_then(Hash32::from_hex))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| failed("the consistency proof holds a hash that is not 64 hex digits"))?;
    Ok((text, proof))
}

/// Files next to the state file: `<state>.fork-<time>.kept.note`, `.served.note`, and the
/// proof's JSON when a proof failed.
fn write_evidence(
    state_path: &Path,
    now: u64,
    kept_note: &str,
    served_note: &str,
    proof: Option<&str>,
) -> Result<Vec<PathBuf>, WitnessError> {
    let base = state_path.as_os_str().to_string_lossy().into_owned();
    let mut files = vec![
        (format!("{base}.fork-{now}.kept.note"), kept_note),
        (format!("{base}.fork-{now}.served.note"), served_note),
    ];
    if let Some(proof) = proof {
        files.push((format!("{base}.fork-{now}.consistency-proof.json"), proof));
    }
    let mut written = Vec::new();
    for (path, contents) in files {
        let path = PathBuf::from(path);
        write_atomically(&path, contents.as_bytes()).map_err(failed)?;
        written.push(path);
    }
    Ok(written)
}

/// One round of the witness (`--once`): see the module's documentation. `now` is the time of
/// the cosignature, in seconds since the Unix epoch.
pub async fn witness_once(
    config: &WitnessConfig,
    client: &reqwest::Client,
    now: u64,
) -> Result<RoundOutcome, WitnessError> {
    let witness_vkey = config.witness_vkey().map_err(failed)?;
    let state = load_state(&config.state_path).map_err(failed)?;
    if let Some(fork) = state.as_ref().and_then(|state| state.fork.as_ref()) {
        return Err(WitnessError::Fork {
            reason: format!(
                "a fork was detected at {} and the witness stopped: {} (remove \"fork\" from the \
                 state file to go on)",
                fork.detected_at, fork.reason
            ),
            evidence: fork.evidence.iter().map(PathBuf::from).collect(),
        });
    }
    let note = fetch_checkpoint(config, client).await?;
    let origin = expected_origin(config, state.as_ref(), &note).map_err(failed)?;
    let checkpoint = open_log_checkpoint(&note, &origin, &config.log_keys.keys).map_err(failed)?;
    let kept = state
        .as_ref()
        .map(|state| state.root_hash().map(|root| (state.tree_size, root)))
        .transpose()
        .map_err(failed)?;

    let mut verdict = judge(kept, checkpoint.size, &checkpoint.root, None);
    let mut proof_text = None;
    if let Verdict::NeedsProof { from_size, to_size } = verdict {
        let (text, proof) = fetch_consistency_proof(config, client, from_size, to_size).await?;
        verdict = judge(kept, checkpoint.size, &checkpoint.root, Some(&proof));
        proof_text = Some(text);
    }
    let verified_by = match verdict {
        Verdict::FirstUse => "first_use",
        Verdict::Extends => "consistency_proof",
        Verdict::Same => "same_checkpoint",
        Verdict::NeedsProof { .. } => unreachable!("judged with the proof"),
        Verdict::Rollback { kept_size } => {
            return Err(failed(format!(
                "refused: the log serves a checkpoint of tree size {} after one of size \
                 {kept_size}",
                checkpoint.size
            )))
        }
        Verdict::Fork(reason) => {
            let mut state = state.expect("a fork needs a kept checkpoint");
            let evidence = write_evidence(
                &config.state_path,
                now,
                &state.note,
                &note,
                proof_text.as_deref(),
            )?;
            state.fork = Some(ForkRecord {
                detected_at: now,
                reason: reason.clone(),
                evidence: evidence
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect(),
            });
            state.updated_at = now;
            save_state(&config.state_path, &state).map_err(failed)?;
            return Err(WitnessError::Fork { reason, evidence });
        }
    };
    if verified_by == "same_checkpoint"
        && state
            .as_ref()
            .and_then(|state| state.cosigned.as_ref())
            .is_some_and(|cosigned| cosigned.tree_size == checkpoint.size)
    {
        return Ok(RoundOutcome::Unchanged {
            tree_size: checkpoint.size,
        });
    }

    // Record what was verified before any cosignature of it leaves this machine.
    let root_hex = checkpoint.root.to_hex();
    let mut new_state = match state {
        Some(state) if verified_by == "same_checkpoint" => state,
        Some(state) => WitnessState {
            tree_size: checkpoint.size,
            root: root_hex.clone(),
            note: note.clone(),
            verified_by: verified_by.into(),
            cosigned: None,
            updated_at: now,
            ..state
        },
        None => WitnessState {
            format: STATE_FORMAT.into(),
            origin: origin.clone(),
            tree_size: checkpoint.size,
            root: root_hex.clone(),
            note: note.clone(),
            verified_by: verified_by.into(),
            first_use: FirstUse {
                tree_size: checkpoint.size,
                root: root_hex,
                at: now,
            },
            cosigned: None,
            fork: None,
            updated_at: now,
        },
    };
    save_state(&config.state_path, &new_state).map_err(failed)?;

    let (cosigned_note, cosignature) =
        cosign_note(&note, &config.name, &config.witness_key, now)
            .map_err(|error| failed(format!("cannot co-sign: {error}")))?;
    let response = client
        .post(ledger_url(config, "/checkpoint/cosignatures"))
        .bearer_auth(&config.api_key)
        .json(&json!({ "witness_key": witness_vkey, "note": cosigned_note }))
        .send()
        .await;
    let (status, _) = answer_text(response, "POST cosignature").await?;
    new_state.cosigned = Some(CosignedRecord {
        tree_size: checkpoint.size,
        timestamp: cosignature.timestamp,
        line: cosignature.line(),
    });
    new_state.updated_at = now;
    save_state(&config.state_path, &new_state).map_err(failed)?;
    Ok(RoundOutcome::Cosigned {
        tree_size: checkpoint.size,
        root: checkpoint.root,
        verified_by,
        cosignature,
        status,
    })
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `ledger witness`: rounds every `interval` until SIGINT or SIGTERM (or one with `once`).
/// Returns the exit code.
pub async fn run(config: &WitnessConfig, interval: Duration, once: bool) -> u8 {
    let client = match http_client() {
        Ok(client) => client,
        Err(message) => {
            tracing::error!("{message}");
            return EXIT_ERROR;
        }
    };
    match config.witness_vkey() {
        Ok(vkey) => tracing::info!(witness_key = %vkey, ledger = %config.ledger, "witness started"),
        Err(message) => {
            tracing::error!("{message}");
            return EXIT_USAGE;
        }
    }
    loop {
        match witness_once(config, &client, unix_now()).await {
            Ok(RoundOutcome::Cosigned {
                tree_size,
                root,
                verified_by,
                status,
                ..
            }) => {
                tracing::info!(
                    tree_size,
                    root = %root,
                    verified_by,
                    status,
                    "checkpoint verified and co-signed"
                )
            }
            Ok(RoundOutcome::Unchanged { tree_size }) => {
                tracing::info!(tree_size, "no new checkpoint")
            }
            Err(error @ WitnessError::Fork { .. }) => {
                tracing::error!("{error}");
                eprintln!("ledger witness: {error}");
                return EXIT_FORK;
            }
            Err(error) => {
                tracing::warn!("{error}");
                if once {
                    eprintln!("ledger witness: {error}");
                    return EXIT_ERROR;
                }
            }
        }
        if once {
            return EXIT_OK;
        }
        if stopped_within(interval).await {
            return EXIT_OK;
        }
    }
}

/// Waits `interval`; true when SIGINT or SIGTERM came first.
async fn stopped_within(interval: Duration) -> bool {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(interval) => false,
        _ = tokio::signal::ctrl_c() => true,
        _ = terminate => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::checkpoint::{sign_checkpoint, sign_checkpoint_at};
    use crate::audit::merkle::InMemoryMerkleTree;
    use crate::domain::Timestamp;

    fn tree(size: u64) -> InMemoryMerkleTree {
        InMemoryMerkleTree::from_leaf_hashes(
            (0..size)
                .map(|index| Hash32::sha256(&index.to_be_bytes()))
                .collect(),
        )
    }

    #[test]
    fn the_verdict_follows_the_kept_checkpoint() {
        let (old, new) = (tree(5), tree(9));
        let kept = Some((5, old.root()));
        assert_eq!(judge(None, 9, &new.root(), None), Verdict::FirstUse);
        assert_eq!(judge(kept, 5, &old.root(), None), Verdict::Same);
        assert_eq!(
            judge(kept, 9, &new.root(), None),
            Verdict::NeedsProof {
                from_size: 5,
                to_size: 9
            }
        );
        let proof = new.consistency_proof(5, 9).unwrap();
        assert_eq!(judge(kept, 9, &new.root(), Some(&proof)), Verdict::Extends);
        assert_eq!(
            judge(kept, 4, &tree(4).root(), None),
            Verdict::Rollback { kept_size: 5 }
        );
        assert!(matches!(
            judge(kept, 5, &new.root(), None),
            Verdict::Fork(_)
        ));
        // A proof that does not join the kept root to the new one: another history.
        let other = InMemoryMerkleTree::from_leaf_hashes(
            (0..9)
                .map(|index| Hash32::sha256(&[index as u8, 1]))
                .collect(),
        );
        let other_proof = other.consistency_proof(5, 9).unwrap();
        assert!(matches!(
            judge(kept, 9, &other.root(), Some(&other_proof)),
            Verdict::Fork(_)
        ));
        assert!(matches!(
            judge(kept, 9, &new.root(), Some(&[])),
            Verdict::Fork(_)
        ));
    }

    #[test]
    fn log_keys_are_read_as_pem_base64_keys_json_or_vkey() {
        let key = SigningKey::from_bytes(&[42; 32]).verifying_key();
        let pem = crate::signing::public_key_pem(&key);
        let base64 = BASE64.encode(key.as_bytes());
        let vkey = NoteVerifier::new("ledger/main", key)
            .unwrap()
            .to_verifier_key_string();
        for (text, origin) in [
            (pem.as_str(), None),
            (base64.as_str(), None),
            (vkey.as_str(), Some("ledger/main")),
        ] {
            let keys = parse_log_keys(text).unwrap();
            assert_eq!(keys.keys[0].key, key);
            assert_eq!(keys.origin.as_deref(), origin);
        }
        let json = json!([{
            "id": crate::audit::export::key_id(&key),
            "public_key": base64,
            "valid_from": "2026-11-18T11:06:40.000000Z",
            "retired_at": null,
            "note_verifier_key": vkey
        }]);
        let keys = parse_log_keys(&json.to_string()).unwrap();
        assert_eq!(keys.origin.as_deref(), Some("ledger/main"));
        assert!(keys.keys[0].valid_from.is_some());
        assert!(parse_log_keys("not a key").is_err());
        assert!(parse_log_keys("[]").is_err());
    }

    #[test]
    fn a_checkpoint_opens_only_under_the_log_key_its_origin_and_its_time_of_service() {
        let key = SigningKey::from_bytes(&[42; 32]);
        let root = Hash32::sha256(b"root");
        let at = Timestamp::from_unix_micros(1_795_000_000_000_000);
        let note = sign_checkpoint_at("ledger/main", 3, &root, at, &key).unwrap();
        let trusted = [TrustedKey::new(key.verifying_key())];
        assert_eq!(
            open_log_checkpoint(&note, "ledger/main", &trusted)
                .unwrap()
                .size,
            3
        );
        assert!(open_log_checkpoint(&note, "ledger/other", &trusted).is_err());
        let other = [TrustedKey::new(
            SigningKey::from_bytes(&[43; 32]).verifying_key(),
        )];
        assert!(open_log_checkpoint(&note, "ledger/main", &other).is_err());
        let retired = [TrustedKey {
            retired_at: Some(Timestamp::from_unix_micros(at.unix_micros() - 1)),
            ..TrustedKey::new(key.verifying_key())
        }];
        let error = open_log_checkpoint(&note, "ledger/main", &retired).unwrap_err();
        assert!(error.starts_with("key_not_valid"), "{error}");
        // Without signed_at, no time to hold.
        let undated = sign_checkpoint("ledger/main", 3, &root, &key).unwrap();
        assert!(open_log_checkpoint(&undated, "ledger/main", &retired).is_ok());
    }

    #[test]
    fn the_state_file_is_replaced_whole_and_read_back() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("witness.json");
        assert_eq!(load_state(&path), Ok(None));
        let state = WitnessState {
            format: STATE_FORMAT.into(),
            origin: "ledger/main".into(),
            tree_size: 3,
            root: Hash32::sha256(b"root").to_hex(),
            note: "a note\n".into(),
            verified_by: "first_use".into(),
            first_use: FirstUse {
                tree_size: 3,
                root: Hash32::sha256(b"root").to_hex(),
                at: 7,
            },
            cosigned: None,
            fork: None,
            updated_at: 7,
        };
        save_state(&path, &state).unwrap();
        assert_eq!(load_state(&path), Ok(Some(state.clone())));
        let later = WitnessState {
            tree_size: 4,
            ..state
        };
        save_state(&path, &later).unwrap();
        assert_eq!(load_state(&path), Ok(Some(later)));
        let entries: Vec<_> = std::fs::read_dir(folder.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "no temporary file is left behind");
        std::fs::write(&path, "{}").unwrap();
        assert!(load_state(&path).is_err());
    }
}
