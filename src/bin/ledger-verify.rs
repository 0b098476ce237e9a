//! `ledger-verify`: checks a signed export, an inclusion proof or a consistency proof offline
//! (docs/AUDIT_FORMAT.md §3 and §6). No database, no network: the file, the public key, and the
//! same pure audit core the service runs.
//!
//! `--public-key` takes a PEM file, the base64 of the 32-byte key, or the JSON of `GET /v1/keys`
//! (every key the service ever signed with, with `valid_from` and `retired_at`): then the
//! manifest's key id picks the key, and each checkpoint's `signed_at` is held to its key's time
//! of service. `export --checkpoint NOTE…` holds the export to checkpoints kept earlier.
//! `checkpoint NOTE --witness VKEY… --min-cosignatures K` verifies a checkpoint served with its
//! witnesses' cosignatures (C2SP tlog-cosignature): the log's signature and at least K valid
//! cosignatures by distinct keys among those given.
//!
//! Exit codes: 0 everything verifies, 1 a verification fault (printed), 2 a usage error (bad
//! arguments, unreadable file, malformed key).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use clap::{Args, Parser, Subcommand};
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::VerifyingKey;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ledger::audit::checkpoint::{open_checkpoint, Checkpoint, NoteVerifier};
use ledger::audit::cosignature::{check_cosignatures, WitnessKey};
use ledger::audit::export::key_id;
use ledger::audit::merkle::{leaf_hash, verify_consistency, verify_inclusion, VerifyError};
use ledger::audit::time::{format_timestamp, parse_timestamp};
use ledger::audit::verify::{
    verify_export_with, Anchor, AnchorProof, ExportFaultKind, TrustedKey, UnreadableLine,
    Verification, MAX_LINE_BYTES,
};
use ledger::audit::Hash32;
use ledger::domain::Timestamp;
use ledger::witness::open_log_checkpoint;
use serde_json::{json, Value};

/// mimalloc, as the server: verification decodes, re-encodes and hashes every line through many
/// small, short-lived allocations, where it is markedly faster than glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_VALID: u8 = 0;
const EXIT_INVALID: u8 = 1;
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "ledger-verify",
    version,
    about = "Verifies a signed ledger export, an inclusion proof or a consistency proof offline",
    after_help = "Without a subcommand, `ledger-verify <FILE> --public-key <KEY>` verifies an \
                  export.\n\nKEY is a PEM file (-----BEGIN PUBLIC KEY-----), the base64 of the \
                  32-byte Ed25519 public key, or a file holding the JSON of GET /v1/keys (all \
                  keys, current and retired, with their valid_from and retired_at).\n\nExit \
                  codes: 0 valid, 1 invalid (the first fault is printed), 2 usage error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a signed export (GET /v1/ledgers/{ledger}/export): every check of
    /// docs/AUDIT_FORMAT.md §6, reporting the first fault in file order.
    Export(ExportArgs),
    /// Verify an inclusion proof: the event with this hash is leaf seq − 1 of the tree.
    Inclusion(InclusionArgs),
    /// Verify a consistency proof: the tree of from-size leaves is a prefix of the tree of
    /// to-size leaves.
    Consistency(ConsistencyArgs),
    /// Verify a signed checkpoint (GET /v1/ledgers/{ledger}/checkpoint) and its witnesses'
    /// cosignatures: signed by the log, and co-signed by at least --min-cosignatures of the
    /// --witness keys.
    Checkpoint(CheckpointNoteArgs),
}

#[derive(Args)]
struct CheckpointNoteArgs {
    /// The note file, or - for standard input.
    #[arg(value_name = "NOTE")]
    note: PathBuf,
    /// The key that signs checkpoints: a PEM file, the base64 of its 32 bytes, or the JSON of
    /// GET /v1/keys (then `signed_at` is held to the key's time of service).
    #[arg(long, value_name = "KEY")]
    public_key: String,
    /// The origin the checkpoint must have (default: its own first line).
    #[arg(long, value_name = "ORIGIN")]
    origin: Option<String>,
    /// A witness's verifier key (`<name>+<key ID>+<base64(0x04 ‖ key)>`), or a file of them, one
    /// per line (repeatable).
    #[arg(long = "witness", value_name = "VKEY|FILE", action = clap::ArgAction::Append)]
    witnesses: Vec<String>,
    /// How many of the witnesses (distinct keys) must have co-signed; default: all of them.
    #[arg(long, value_name = "K")]
    min_cosignatures: Option<usize>,
    /// Print the verdict as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExportArgs {
    /// The export file (JSON lines), or - for standard input.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The service's Ed25519 public key: a PEM file, the base64 of its 32 bytes, or the JSON
    /// of GET /v1/keys.
    #[arg(long, value_name = "KEY")]
    public_key: String,
    /// Signed checkpoint notes kept earlier (GET /v1/ledgers/{ledger}/checkpoint): the
    /// export's tree must contain each (same root at its size).
    #[arg(
        long = "checkpoint",
        value_name = "NOTE_FILE",
        num_args = 1..,
        action = clap::ArgAction::Append
    )]
    checkpoints: Vec<PathBuf>,
    /// For a range export whose opening comes after a kept checkpoint: the service's
    /// consistency proof (GET .../proofs/consistency?from_size=<kept size>&to_size=<a size
    /// from the opening to to_seq>) as a JSON file.
    #[arg(long = "consistency-proof", value_name = "FILE", action = clap::ArgAction::Append)]
    consistency_proofs: Vec<PathBuf>,
    /// Print the report or the fault as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct InclusionArgs {
    /// The service's answer (GET .../proofs/inclusion) as a JSON file, or - for standard input,
    /// instead of the flags below.
    #[arg(
        long,
        value_name = "FILE|-",
        conflicts_with_all = ["event_hash", "seq", "tree_size", "root", "proof"]
    )]
    json: Option<String>,
    /// The event's hash (hex).
    #[arg(long, value_name = "HEX")]
    event_hash: Option<String>,
    /// The event's seq; its leaf index is seq − 1.
    #[arg(long, value_name = "N")]
    seq: Option<u64>,
    /// The size of the tree the proof is for (or from --checkpoint).
    #[arg(long, value_name = "M")]
    tree_size: Option<u64>,
    /// The root of that tree, hex or base64 (or from --checkpoint).
    #[arg(long, value_name = "HEX|BASE64")]
    root: Option<String>,
    /// The audit path, hashes in hex separated by commas (empty for a tree of one leaf).
    #[arg(long, value_name = "HEX,HEX,...")]
    proof: Option<String>,
    #[command(flatten)]
    checkpoint: CheckpointArgs,
}

#[derive(Args)]
struct ConsistencyArgs {
    /// The service's answer (GET .../proofs/consistency) as a JSON file, or - for standard
    /// input, instead of the flags below.
    #[arg(
        long,
        value_name = "FILE|-",
        conflicts_with_all = ["from_size", "to_size", "from_root", "to_root", "proof"]
    )]
    json: Option<String>,
    /// The size of the older tree.
    #[arg(long, value_name = "M")]
    from_size: Option<u64>,
    /// The size of the newer tree (or from --checkpoint).
    #[arg(long, value_name = "N")]
    to_size: Option<u64>,
    /// The root of the older tree (hex or base64).
    #[arg(long, value_name = "HEX|BASE64")]
    from_root: Option<String>,
    /// The root of the newer tree, hex or base64 (or from --checkpoint).
    #[arg(long, value_name = "HEX|BASE64")]
    to_root: Option<String>,
    /// The consistency proof, hashes in hex separated by commas.
    #[arg(long, value_name = "HEX,HEX,...")]
    proof: Option<String>,
    /// A signed checkpoint note of the older tree: take from-size and from-root from it.
    #[arg(long, value_name = "FILE", requires = "public_key")]
    from_checkpoint: Option<PathBuf>,
    #[command(flatten)]
    checkpoint: CheckpointArgs,
}

#[derive(Args)]
struct CheckpointArgs {
    /// A signed checkpoint note (GET /v1/ledgers/{ledger}/checkpoint): after checking its
    /// signature, take the (newer) tree's size and root from it.
    #[arg(long, value_name = "FILE", requires = "public_key")]
    checkpoint: Option<PathBuf>,
    /// The key that signs checkpoints: a PEM file, the base64 of its 32 bytes, or the JSON of
    /// GET /v1/keys.
    #[arg(long, value_name = "KEY")]
    public_key: Option<String>,
}

/// A problem with the invocation rather than with what is verified: exit code 2.
struct UsageError(String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(error: E) -> UsageError {
        UsageError(error.to_string())
    }
}

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(with_default_subcommand(std::env::args_os().collect()));
    let outcome = match cli.command {
        Command::Export(args) => run_export(&args),
        Command::Inclusion(args) => run_inclusion(&args),
        Command::Consistency(args) => run_consistency(&args),
        Command::Checkpoint(args) => run_checkpoint(&args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(UsageError(message)) => {
            eprintln!("ledger-verify: {message}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `ledger-verify <FILE> ...` means `ledger-verify export <FILE> ...`: anything that is not a
/// subcommand or a top-level flag gets `export` in front.
fn with_default_subcommand(mut args: Vec<OsString>) -> Vec<OsString> {
    const TOP_LEVEL: &[&str] = &[
        "export",
        "inclusion",
        "consistency",
        "checkpoint",
        "help",
        "-h",
        "--help",
        "-V",
        "--version",
    ];
    let first = args.get(1).map(|arg| arg.to_string_lossy().into_owned());
    if first.is_some_and(|first| !TOP_LEVEL.contains(&first.as_str())) {
        args.insert(1, OsString::from("export"));
    }
    args
}

// ---------------------------------------------------------------------------------------------
// Export.

fn run_export(args: &ExportArgs) -> Result<u8, UsageError> {
    let keys = read_keys(&args.public_key)?;
    let anchors = read_anchors(&args.checkpoints, &args.consistency_proofs)?;
    let verification = Verification {
        keys: &keys,
        anchors: &anchors,
    };
    let (reader, length) = open_input(&args.file)?;
    let bar = progress_bar(length);
    let lines = ExportLines::new(reader);
    let result = verify_export_with(lines, &verification, &mut |bytes| bar.set_position(bytes));
    bar.finish_and_clear();
    match result {
        Ok(report) => {
            if args.json {
                let mut object = report.to_json();
                object["verified"] = Value::Bool(true);
                println!("{object}");
            } else {
                println!("VERIFIED {report}");
            }
            Ok(EXIT_VALID)
        }
        Err(fault) => {
            if args.json {
                let mut object = fault.to_json();
                object["verified"] = Value::Bool(false);
                println!("{object}");
            } else {
                println!("FAILED at {fault}");
            }
            // An I/O error says nothing about the export: it could not be checked.
            match fault.kind {
                ExportFaultKind::Unreadable => Ok(EXIT_USAGE),
                _ => Ok(EXIT_INVALID),
            }
        }
    }
}

/// The kept checkpoints, each with the consistency proof whose `from_size` is its size.
fn read_anchors(notes: &[PathBuf], proofs: &[PathBuf]) -> Result<Vec<Anchor>, UsageError> {
    let mut proofs = proofs
        .iter()
        .map(|path| {
            let object = read_json(&path.to_string_lossy())?;
            Ok((
                json_u64(&object, "from_size")?,
                AnchorProof {
                    to_size: json_u64(&object, "to_size")?,
                    proof: json_proof(&object)?,
                },
                path,
            ))
        })
        .collect::<Result<Vec<_>, UsageError>>()?;
    let mut anchors = Vec::with_capacity(notes.len());
    for path in notes {
        let note = std::fs::read_to_string(path)
            .map_err(|error| usage(format!("--checkpoint {}: {error}", path.display())))?;
        let size = note
            .find("\n\n")
            .and_then(|blank| Checkpoint::from_note_text(&note[..blank + 1]).ok())
            .map(|checkpoint| checkpoint.size);
        let proof = proofs
            .iter()
            .position(|(from_size, _, _)| Some(*from_size) == size)
            .map(|index| proofs.remove(index).1);
        anchors.push(Anchor {
            name: path.display().to_string(),
            note,
            consistency: proof,
        });
    }
    if let Some((from_size, _, path)) = proofs.first() {
        return Err(usage(format!(
            "--consistency-proof {}: from_size {from_size} is the size of no --checkpoint given",
            path.display()
        )));
    }
    Ok(anchors)
}

/// The file (or standard input for `-`) and its length when known, for the progress bar.
fn open_input(path: &Path) -> Result<(Box<dyn BufRead>, Option<u64>), UsageError> {
    if path.as_os_str() == "-" {
        return Ok((Box::new(BufReader::new(io::stdin())), None));
    }
    let file = File::open(path).map_err(|error| usage(format!("{}: {error}", path.display())))?;
    let length = file.metadata().ok().map(|metadata| metadata.len());
    Ok((Box::new(BufReader::with_capacity(1 << 20, file)), length))
}

/// Bytes verified, on stderr; indicatif draws nothing when stderr is not a terminal.
fn progress_bar(length: Option<u64>) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::stderr());
    let template = match length {
        Some(_) => "{spinner} verifying [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        None => "{spinner} verifying {bytes} ({bytes_per_sec})",
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The lines of a reader, each without its `\n`, at most [`MAX_LINE_BYTES`] long; a last line
/// without `\n` is [`UnreadableLine::Unterminated`]. Stops after the first error.
struct ExportLines<R> {
    reader: R,
    stopped: bool,
}

impl<R: BufRead> ExportLines<R> {
    fn new(reader: R) -> ExportLines<R> {
        ExportLines {
            reader,
            stopped: false,
        }
    }
}

impl<R: BufRead> Iterator for ExportLines<R> {
    type Item = Result<Vec<u8>, UnreadableLine>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stopped {
            return None;
        }
        let mut line = Vec::new();
        // One byte more than the limit: a line of exactly the limit still has room for its `\n`.
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = (&mut self.reader).take(limit).read_until(b'\n', &mut line);
        let item = match read {
            Ok(0) => None,
            Ok(_) if line.last() == Some(&b'\n') => {
                line.pop();
                return Some(Ok(line));
            }
            Ok(_) if line.len() > MAX_LINE_BYTES => Some(Err(UnreadableLine::TooLong)),
            Ok(_) => Some(Err(UnreadableLine::Unterminated)),
            Err(error) => Some(Err(UnreadableLine::Io(error.to_string()))),
        };
        self.stopped = true;
        item
    }
}

// ---------------------------------------------------------------------------------------------
// Keys, hashes and checkpoints.

/// The keys of `--public-key`: one key (PEM, base64) valid whenever, or every key of the JSON
/// of `GET /v1/keys` with the times it was in service.
fn read_keys(argument: &str) -> Result<Vec<TrustedKey>, UsageError> {
    let text = key_argument_text(argument)?;
    let text = text.trim();
    if text.starts_with('[') || text.starts_with('{') {
        return keys_from_json(argument, text);
    }
    Ok(vec![TrustedKey::new(public_key_from_text(argument, text)?)])
}

/// The JSON of `GET /v1/keys`: an array of `{id (or key_id), public_key (base64) or
/// public_key_pem, valid_from, retired_at, ...}` (a single such object is taken too). Each
/// key's id must be the id of its key.
fn keys_from_json(argument: &str, text: &str) -> Result<Vec<TrustedKey>, UsageError> {
    let bad = |reason: String| usage(format!("--public-key {argument}: {reason}"));
    let value: Value =
        serde_json::from_str(text).map_err(|error| bad(format!("not JSON: {error}")))?;
    let entries = match value {
        Value::Array(entries) => entries,
        object @ Value::Object(_) => vec![object],
        _ => return Err(bad("expected the array of GET /v1/keys".into())),
    };
    let time = |entry: &Value, key: &str| match &entry[key] {
        Value::Null => Ok(None),
        Value::String(text) => parse_timestamp(text)
            .map(Some)
            .ok_or_else(|| bad(format!("{key} {text:?} is not an RFC 3339 UTC time"))),
        _ => Err(bad(format!("{key} must be a string or null"))),
    };
    let mut keys = Vec::with_capacity(entries.len());
    for entry in &entries {
        let key = match (
            entry["public_key"].as_str(),
            entry["public_key_pem"].as_str(),
        ) {
            (Some(base64), _) => public_key_from_text(argument, base64)?,
            (None, Some(pem)) => public_key_from_text(argument, pem)?,
            (None, None) => return Err(bad("a key without public_key or public_key_pem".into())),
        };
        let stated = entry["id"].as_str().or(entry["key_id"].as_str());
        if stated.is_some_and(|stated| stated != key_id(&key)) {
            return Err(bad(format!(
                "the key listed as {:?} has the id {}",
                stated.unwrap_or_default(),
                key_id(&key)
            )));
        }
        keys.push(TrustedKey {
            valid_from: time(entry, "valid_from")?,
            retired_at: time(entry, "retired_at")?,
            ..TrustedKey::new(key)
        });
    }
    if keys.is_empty() {
        return Err(bad("the key list is empty".into()));
    }
    Ok(keys)
}

fn key_argument_text(argument: &str) -> Result<String, UsageError> {
    let path = Path::new(argument);
    if path.is_file() {
        return std::fs::read_to_string(path)
            .map_err(|error| usage(format!("--public-key {argument}: {error}")));
    }
    Ok(argument.to_owned())
}

/// A PEM file (SPKI, `-----BEGIN PUBLIC KEY-----`), a file holding the base64, or the base64 of
/// the 32-byte key itself.
fn public_key_from_text(argument: &str, text: &str) -> Result<VerifyingKey, UsageError> {
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        return VerifyingKey::from_public_key_pem(text).map_err(|error| {
            usage(format!(
                "--public-key {argument}: not an Ed25519 public key PEM: {error}"
            ))
        });
    }
    let bytes: Option<[u8; 32]> = BASE64
        .decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok());
    let key = bytes.and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok());
    key.ok_or_else(|| {
        usage(format!(
            "--public-key {argument}: neither a PEM file nor the base64 of a 32-byte Ed25519 \
             public key"
        ))
    })
}

/// A 32-byte hash in hex (64 digits) or base64 (44 characters), as roots appear in proofs and
/// checkpoints.
fn parse_hash(what: &str, text: &str) -> Result<Hash32, UsageError> {
    let text = text.trim();
    let from_hex = Hash32::from_hex(&text.to_ascii_lowercase()).filter(|_| text.len() == 64);
    let from_base64 = || {
        BASE64
            .decode(text)
            .ok()
            .and_then(|bytes| Hash32::from_slice(&bytes))
    };
    from_hex.or_else(from_base64).ok_or_else(|| {
        usage(format!(
            "{what}: {text:?} is not a 32-byte hash in hex or base64"
        ))
    })
}

/// `hex,hex,...`; the empty string is the empty proof.
fn parse_proof(text: &str) -> Result<Vec<Hash32>, UsageError> {
    text.split(',')
        .map(str::trim)
        .filter(|hash| !hash.is_empty())
        .map(|hash| parse_hash("--proof", hash))
        .collect()
}

/// The verdict on a proof or checkpoint: what is printed, and the exit code.
enum Verdict {
    Valid(String),
    Invalid(String),
}

impl Verdict {
    fn print(self) -> u8 {
        match self {
            Verdict::Valid(message) => {
                println!("VALID {message}");
                EXIT_VALID
            }
            Verdict::Invalid(message) => {
                println!("INVALID {message}");
                EXIT_INVALID
            }
        }
    }
}

/// Opens a checkpoint note with the public key under the name on its first line (the origin).
/// `Ok(Err(..))` is a checkpoint that does not verify.
fn read_checkpoint(
    path: &Path,
    public_key: Option<&str>,
) -> Result<Result<Checkpoint, String>, UsageError> {
    let public_key = public_key.ok_or_else(|| usage("--checkpoint needs --public-key"))?;
    let keys = read_keys(public_key)?;
    let note = std::fs::read_to_string(path)
        .map_err(|error| usage(format!("{}: {error}", path.display())))?;
    let origin = note.split('\n').next().unwrap_or_default();
    let opened = keys
        .iter()
        .map(|key| NoteVerifier::new(origin, key.key))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|verifiers| open_checkpoint(&note, origin, &verifiers))
        .map_err(|error| format!("checkpoint_invalid: {}: {error}", path.display()));
    Ok(opened)
}

/// What RFC 9162 check a proof failed, as a stable code.
fn verify_error_code(error: &VerifyError) -> &'static str {
    match error {
        VerifyError::LeafIndexOutOfRange { .. } => "leaf_index_out_of_range",
        VerifyError::OldSizeAboveNewSize { .. } => "old_size_above_new_size",
        VerifyError::ProofTooLong => "proof_too_long",
        VerifyError::ProofTooShort => "proof_too_short",
        VerifyError::ConsistencyProofEmpty => "consistency_proof_empty",
        VerifyError::ConsistencyProofNotEmpty => "consistency_proof_not_empty",
        VerifyError::RootMismatch { .. } => "root_mismatch",
        VerifyError::OldRootMismatch { .. } => "old_root_mismatch",
        VerifyError::NewRootMismatch { .. } => "new_root_mismatch",
    }
}

/// A size and root claimed by the proof (either may be absent when a checkpoint gives them),
/// reconciled with the checkpoint's when there is one.
fn tree_head(
    what: &str,
    claimed_size: Option<u64>,
    claimed_root: Option<Hash32>,
    checkpoint: Option<Checkpoint>,
) -> Result<Result<(u64, Hash32), String>, UsageError> {
    let Some(checkpoint) = checkpoint else {
        let size = claimed_size.ok_or_else(|| usage(format!("the {what}'s size is missing")))?;
        let root = claimed_root.ok_or_else(|| usage(format!("the {what}'s root is missing")))?;
        return Ok(Ok((size, root)));
    };
    if claimed_size.is_some_and(|size| size != checkpoint.size) {
        return Ok(Err(format!(
            "tree_size_mismatch: the proof is for a {what} of size {}, the checkpoint is of size \
             {}",
            claimed_size.unwrap_or_default(),
            checkpoint.size
        )));
    }
    if claimed_root.is_some_and(|root| root != checkpoint.root) {
        return Ok(Err(format!(
            "root_mismatch: the {what}'s root given is not the checkpoint's root {}",
            checkpoint.root
        )));
    }
    Ok(Ok((checkpoint.size, checkpoint.root)))
}

fn optional_checkpoint(
    path: Option<&PathBuf>,
    public_key: Option<&str>,
) -> Result<Result<Option<Checkpoint>, String>, UsageError> {
    match path {
        None => Ok(Ok(None)),
        Some(path) => Ok(read_checkpoint(path, public_key)?.map(Some)),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON answers of the service.

fn read_json(source: &str) -> Result<Value, UsageError> {
    let text = if source == "-" {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(source).map_err(|error| usage(format!("{source}: {error}")))?
    };
    serde_json::from_str(&text).map_err(|error| usage(format!("{source}: not JSON: {error}")))
}

fn json_u64(object: &Value, key: &str) -> Result<u64, UsageError> {
    object[key]
        .as_u64()
        .ok_or_else(|| usage(format!("the JSON has no integer {key:?}")))
}

fn json_hash(object: &Value, key: &str) -> Result<Hash32, UsageError> {
    let text = object[key]
        .as_str()
        .ok_or_else(|| usage(format!("the JSON has no string {key:?}")))?;
    parse_hash(key, text)
}

fn json_proof(object: &Value) -> Result<Vec<Hash32>, UsageError> {
    let hashes = object["proof"]
        .as_array()
        .ok_or_else(|| usage("the JSON has no array \"proof\""))?;
    hashes
        .iter()
        .map(|hash| {
            let text = hash
                .as_str()
                .ok_or_else(|| usage("\"proof\" holds a non-string"))?;
            parse_hash("proof", text)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Inclusion.

/// What an inclusion proof claims, from the flags or from the service's JSON answer.
struct InclusionClaim {
    seq: u64,
    event_hash: Hash32,
    tree_size: Option<u64>,
    root: Option<Hash32>,
    proof: Vec<Hash32>,
    /// The service's `leaf_index`, which must be seq − 1.
    leaf_index: Option<u64>,
}

fn inclusion_claim(args: &InclusionArgs) -> Result<InclusionClaim, UsageError> {
    if let Some(source) = &args.json {
        let object = read_json(source)?;
        return Ok(InclusionClaim {
            seq: json_u64(&object, "seq")?,
            event_hash: json_hash(&object, "event_hash")?,
            tree_size: Some(json_u64(&object, "tree_size")?),
            root: Some(json_hash(&object, "root")?),
            proof: json_proof(&object)?,
            leaf_index: Some(json_u64(&object, "leaf_index")?),
        });
    }
    let event_hash = args
        .event_hash
        .as_deref()
        .ok_or_else(|| usage("--event-hash is required (or --json)"))?;
    Ok(InclusionClaim {
        seq: args
            .seq
            .ok_or_else(|| usage("--seq is required (or --json)"))?,
        event_hash: parse_hash("--event-hash", event_hash)?,
        tree_size: args.tree_size,
        root: args
            .root
            .as_deref()
            .map(|root| parse_hash("--root", root))
            .transpose()?,
        proof: parse_proof(args.proof.as_deref().unwrap_or_default())?,
        leaf_index: None,
    })
}

fn run_inclusion(args: &InclusionArgs) -> Result<u8, UsageError> {
    let claim = inclusion_claim(args)?;
    let leaf_index = claim
        .seq
        .checked_sub(1)
        .ok_or_else(|| usage("seq starts at 1"))?;
    let public_key = args.checkpoint.public_key.as_deref();
    let checkpoint = match optional_checkpoint(args.checkpoint.checkpoint.as_ref(), public_key)? {
        Ok(checkpoint) => checkpoint,
        Err(message) => return Ok(Verdict::Invalid(message).print()),
    };
    let signed = checkpoint
        .as_ref()
        .map(|checkpoint| checkpoint.origin.clone());
    let (tree_size, root) = match tree_head("tree", claim.tree_size, claim.root, checkpoint)? {
        Ok(head) => head,
        Err(message) => return Ok(Verdict::Invalid(message).print()),
    };
    if claim.leaf_index.is_some_and(|index| index != leaf_index) {
        let message = format!(
            "leaf_index_mismatch: the answer's leaf_index is {}, seq {} is leaf {leaf_index}",
            claim.leaf_index.unwrap_or_default(),
            claim.seq
        );
        return Ok(Verdict::Invalid(message).print());
    }
    let leaf = leaf_hash(&claim.event_hash);
    let verdict = match verify_inclusion(leaf_index, tree_size, &leaf, &claim.proof, &root) {
        Ok(()) => Verdict::Valid(format!(
            "inclusion: event seq {} (hash {}) is leaf {leaf_index} of the tree of size \
             {tree_size} with root {root}{}",
            claim.seq,
            claim.event_hash,
            signed_by_text(signed.as_deref())
        )),
        Err(error) => Verdict::Invalid(format!(
            "{} (RFC 9162 §2.1.3.2): {error}",
            verify_error_code(&error)
        )),
    };
    Ok(verdict.print())
}

fn signed_by_text(origin: Option<&str>) -> String {
    origin.map_or(String::new(), |origin| {
        format!(", as in the checkpoint signed for {origin}")
    })
}

// ---------------------------------------------------------------------------------------------
// Consistency.

struct ConsistencyClaim {
    from_size: Option<u64>,
    to_size: Option<u64>,
    from_root: Option<Hash32>,
    to_root: Option<Hash32>,
    proof: Vec<Hash32>,
}

fn consistency_claim(args: &ConsistencyArgs) -> Result<ConsistencyClaim, UsageError> {
    if let Some(source) = &args.json {
        let object = read_json(source)?;
        return Ok(ConsistencyClaim {
            from_size: Some(json_u64(&object, "from_size")?),
            to_size: Some(json_u64(&object, "to_size")?),
            from_root: Some(json_hash(&object, "from_root")?),
            to_root: Some(json_hash(&object, "to_root")?),
            proof: json_proof(&object)?,
        });
    }
    let root = |flag: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| parse_hash(flag, text))
            .transpose()
    };
    Ok(ConsistencyClaim {
        from_size: args.from_size,
        to_size: args.to_size,
        from_root: root("--from-root", &args.from_root)?,
        to_root: root("--to-root", &args.to_root)?,
        proof: parse_proof(args.proof.as_deref().unwrap_or_default())?,
    })
}

fn run_consistency(args: &ConsistencyArgs) -> Result<u8, UsageError> {
    let claim = consistency_claim(args)?;
    let public_key = args.checkpoint.public_key.as_deref();
    let old = optional_checkpoint(args.from_checkpoint.as_ref(), public_key)?;
    let new = optional_checkpoint(args.checkpoint.checkpoint.as_ref(), public_key)?;
    let (old, new) = match (old, new) {
        (Ok(old), Ok(new)) => (old, new),
        (Err(message), _) | (_, Err(message)) => return Ok(Verdict::Invalid(message).print()),
    };
    let heads = (
        tree_head("older tree", claim.from_size, claim.from_root, old)?,
        tree_head("newer tree", claim.to_size, claim.to_root, new)?,
    );
    let ((from_size, from_root), (to_size, to_root)) = match heads {
        (Ok(old), Ok(new)) => (old, new),
        (Err(message), _) | (_, Err(message)) => return Ok(Verdict::Invalid(message).print()),
    };
    let verdict = match verify_consistency(from_size, to_size, &from_root, &to_root, &claim.proof) {
        Ok(()) => Verdict::Valid(format!(
            "consistency: the tree of size {from_size} (root {from_root}) is a prefix of the tree \
             of size {to_size} (root {to_root})"
        )),
        Err(error) => Verdict::Invalid(format!(
            "{} (RFC 9162 §2.1.4.2): {error}",
            verify_error_code(&error)
        )),
    };
    Ok(verdict.print())
}

// ---------------------------------------------------------------------------------------------
// A checkpoint and its cosignatures.

/// `--witness`: a vkey, or a file of vkeys (one per line; blank lines and `#` comments skipped).
fn read_witnesses(arguments: &[String]) -> Result<Vec<WitnessKey>, UsageError> {
    let mut witnesses = Vec::new();
    for argument in arguments {
        let path = Path::new(argument);
        let lines: Vec<String> = if path.is_file() {
            std::fs::read_to_string(path)
                .map_err(|error| usage(format!("--witness {argument}: {error}")))?
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned)
                .collect()
        } else {
            vec![argument.trim().to_owned()]
        };
        for line in lines {
            witnesses.push(
                WitnessKey::from_vkey(&line)
                    .map_err(|error| usage(format!("--witness {line}: {error}")))?,
            );
        }
    }
    Ok(witnesses)
}

fn cosigned_at_text(timestamp: u64) -> String {
    i64::try_from(timestamp)
        .ok()
        .and_then(|seconds| seconds.checked_mul(1_000_000))
        .map(|micros| format_timestamp(Timestamp::from_unix_micros(micros)))
        .unwrap_or_else(|| timestamp.to_string())
}

fn run_checkpoint(args: &CheckpointNoteArgs) -> Result<u8, UsageError> {
    let keys = read_keys(&args.public_key)?;
    let witnesses = read_witnesses(&args.witnesses)?;
    let mut distinct: Vec<&VerifyingKey> = Vec::new();
    for witness in &witnesses {
        if !distinct.contains(&witness.verifying_key()) {
            distinct.push(witness.verifying_key());
        }
    }
    let required = args.min_cosignatures.unwrap_or(distinct.len());
    if required > distinct.len() {
        return Err(usage(format!(
            "--min-cosignatures {required} needs at least {required} distinct --witness keys, {} \
             given",
            distinct.len()
        )));
    }
    let note = if args.note.as_os_str() == "-" {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(&args.note)
            .map_err(|error| usage(format!("{}: {error}", args.note.display())))?
    };
    let origin = args
        .origin
        .clone()
        .unwrap_or_else(|| note.split('\n').next().unwrap_or_default().to_owned());
    let checkpoint = match open_log_checkpoint(&note, &origin, &keys) {
        Ok(checkpoint) => checkpoint,
        Err(reason) => {
            let reason = reason.strip_prefix("key_not_valid: ").map_or_else(
                || ("checkpoint_invalid", reason.clone()),
                |rest| ("key_not_valid", rest.to_owned()),
            );
            return Ok(checkpoint_verdict(
                args.json,
                false,
                reason.0,
                &reason.1,
                json!({}),
            ));
        }
    };
    let check = match check_cosignatures(&note, &witnesses, None) {
        Ok(check) => check,
        Err(error) => {
            let detail = error.to_string();
            return Ok(checkpoint_verdict(
                args.json,
                false,
                "checkpoint_invalid",
                &detail,
                json!({}),
            ));
        }
    };
    let cosigners: Vec<String> = check
        .cosigned_by
        .iter()
        .map(|cosigner| {
            format!(
                "{} at {}",
                cosigner.name,
                cosigned_at_text(cosigner.timestamp)
            )
        })
        .collect();
    let invalid: Vec<String> = check
        .invalid
        .iter()
        .map(|(name, error)| format!("{name}: {error}"))
        .collect();
    let report = json!({
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "root": checkpoint.root.to_hex(),
        "required": required,
        "cosigned_by": check.cosigned_by.iter().map(|cosigner| json!({
            "name": cosigner.name,
            "key_id": hex::encode(cosigner.key_id),
            "timestamp": cosigner.timestamp,
        })).collect::<Vec<_>>(),
        "invalid": check.invalid.iter().map(|(
            name,
            error
        )| json!({"name": name, "reason": error.to_string()})).collect::<Vec<_>>(),
    });
    let summary = format!(
        "checkpoint {} tree size {} root {}, signed by the log; {} of {} witness key(s) \
         co-signed, {required} required{}{}",
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root,
        check.cosigned_by.len(),
        distinct.len(),
        if cosigners.is_empty() {
            String::new()
        } else {
            format!(": {}", cosigners.join(", "))
        },
        if invalid.is_empty() {
            String::new()
        } else {
            format!("; invalid: {}", invalid.join("; "))
        },
    );
    let valid = check.cosigned_by.len() >= required;
    let code = if valid { "" } else { "too_few_cosignatures" };
    Ok(checkpoint_verdict(args.json, valid, code, &summary, report))
}

fn checkpoint_verdict(
    as_json: bool,
    valid: bool,
    code: &str,
    detail: &str,
    mut report: Value,
) -> u8 {
    if as_json {
        report["verified"] = Value::Bool(valid);
        if !valid {
            report["code"] = Value::String(code.to_owned());
            report["detail"] = Value::String(detail.to_owned());
        }
        println!("{report}");
        return if valid { EXIT_VALID } else { EXIT_INVALID };
    }
    if valid {
        Verdict::Valid(detail.to_owned()).print()
    } else {
        Verdict::Invalid(format!("{code}: {detail}")).print()
    }
}
