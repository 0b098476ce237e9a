//! `verify_export`, structure-aware: starts from a VALID signed export, changes it as the
//! fuzzer's bytes say, and verifies. Byte 0 picks the export: one built in the target's init
//! by the library's own functions (`ledger_fuzz::built_exports`: 0 a full export from seq 1,
//! 1 a partial one with an opening state), or 2 a real export of the service (signed with the
//! same key; with reconciliation events), `corpus/verify_export/seed-real-full.ndjson`.
//!
//! Modes (byte 1):
//! 0. replace one line with the fuzzer's bytes;
//! 1. insert the fuzzer's bytes as a line;
//! 2. delete one line;
//! 3. xor bytes into one line;
//! 4. truncate the file;
//! 5. a forger holding the signing key changes one JSON value of one line, then re-chains the
//!    events, re-signs the checkpoint and the manifest (exercises the replay on forged events);
//! 6. kept checkpoints (anchors): a checkpoint the auditor kept at a size the fuzzer picks,
//!    its root and its consistency proof possibly forged (built exports only).
//!
//! Properties: nothing panics; in modes 0-4, an export that is not byte for byte the signed
//! one never verifies; in mode 6, the unchanged export verifies with an honest anchor (and its
//! true consistency proof), and never with an anchor whose root is not the tree's root at its
//! size, nor with a consistency proof that is not the true one where the proof is needed.
#![no_main]

use std::sync::OnceLock;

use ledger::audit::checkpoint::{sign_checkpoint, Checkpoint};
use ledger::audit::export::Line;
use ledger::audit::jcs::canonical_json;
use ledger::audit::merkle::{leaf_hash, InMemoryMerkleTree};
use ledger::audit::verify::{
    split_lines, verify_export, verify_export_with, Anchor, AnchorProof, Report, TrustedKey,
    Verification,
};
use ledger::audit::Hash32;
use ledger_fuzz::{
    built_exports, built_journal, encoded, file_of, public_key, resealed, signing_key, Bytes,
    ORIGIN,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct Base {
    lines: Vec<Line>,
    encoded: Vec<Vec<u8>>,
    file: Vec<u8>,
    /// The first leaf of the export's own events: the opening's tree size.
    start: u64,
}

/// A real export of the service, signed with the same key (see tests/fuzz/README.md).
const REAL_EXPORT: &[u8] = include_bytes!("../corpus/verify_export/seed-real-full.ndjson");

fn bases() -> &'static [Base; 3] {
    static BASES: OnceLock<[Base; 3]> = OnceLock::new();
    BASES.get_or_init(|| {
        let [full, partial] = built_exports().clone();
        let real: Vec<Line> = split_lines(REAL_EXPORT)
            .map(|line| Line::decode(&line.expect("a whole line")).expect("a valid line"))
            .collect();
        [full, partial, real].map(|lines| {
            let encoded = encoded(&lines);
            let file = file_of(&encoded);
            let start = lines
                .iter()
                .find_map(|line| match line {
                    Line::Opening(opening) => Some(opening.seq),
                    _ => None,
                })
                .unwrap_or(0);
            let base = Base {
                lines,
                encoded,
                file,
                start,
            };
            assert!(verify(&base.file).is_ok(), "the built export must verify");
            base
        })
    })
}

/// The Merkle tree of the whole built journal.
fn tree() -> &'static InMemoryMerkleTree {
    static TREE: OnceLock<InMemoryMerkleTree> = OnceLock::new();
    TREE.get_or_init(|| {
        InMemoryMerkleTree::from_leaf_hashes(
            built_journal()
                .iter()
                .map(|event| leaf_hash(&event.hash))
                .collect(),
        )
    })
}

fn verify(file: &[u8]) -> Result<Report, ledger::audit::verify::ExportFault> {
    verify_export(split_lines(file), &public_key(), &mut |_| {})
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    let choice = usize::from(bytes.u8());
    let base = &bases()[choice % 3];
    let mode = bytes.u8() % 7;
    let count = base.encoded.len();
    let index = usize::from(bytes.u16()) % count;
    let mut lines = base.encoded.clone();
    let file = match mode {
        0 => {
            lines[index] = bytes.rest().to_vec();
            file_of(&lines)
        }
        1 => {
            lines.insert(
                usize::from(bytes.u16()) % (count + 1),
                bytes.rest().to_vec(),
            );
            file_of(&lines)
        }
        2 => {
            lines.remove(index);
            file_of(&lines)
        }
        3 => {
            let line = &mut lines[index];
            while bytes.len() >= 3 && !line.is_empty() {
                let offset = usize::from(bytes.u16()) % line.len();
                line[offset] ^= bytes.u8();
            }
            file_of(&lines)
        }
        4 => {
            let mut file = base.file.clone();
            file.truncate(bytes.u32() as usize % base.file.len());
            file
        }
        5 => return forge(base, index, &mut bytes),
        // The kept checkpoints are of the built journal's tree.
        _ => return anchored(&bases()[choice % 2], &mut bytes),
    };
    let result = verify(&file);
    if file != base.file {
        assert!(
            result.is_err(),
            "a changed export verified (mode {mode}, line {index}): {:?}",
            String::from_utf8_lossy(&file)
        );
    }
});

/// Mode 5: change one JSON value of line `index` and, if the line still decodes, re-seal the
/// whole export with the signing key; else put the changed bytes in place (then it must fail).
fn forge(base: &Base, index: usize, bytes: &mut Bytes) {
    let mut value: Value = match serde_json::from_slice(&base.encoded[index]) {
        Ok(value) => value,
        Err(_) => return,
    };
    mutate(&mut value, bytes, 0);
    let changed = canonical_json(&value);
    match Line::decode(&changed) {
        Ok(line) => {
            let mut lines = base.lines.clone();
            lines[index] = line;
            let file = file_of(&encoded(&resealed(lines)));
            let _ = verify(&file);
        }
        Err(_) => {
            let mut lines = base.encoded.clone();
            lines[index] = changed;
            let file = file_of(&lines);
            assert!(verify(&file).is_err(), "an undecodable line verified");
        }
    }
}

/// Walks to one value (object keys and array items chosen by the bytes) and replaces it.
fn mutate(value: &mut Value, bytes: &mut Bytes, depth: usize) {
    let descend = depth < 6 && bytes.u8() % 4 != 0;
    match value {
        Value::Object(object) if descend && !object.is_empty() => {
            let key = object
                .keys()
                .nth(usize::from(bytes.u8()) % object.len())
                .cloned()
                .expect("an index below the length");
            if bytes.u8() % 16 == 0 {
                object.remove(&key);
                return;
            }
            mutate(
                object.get_mut(&key).expect("the key exists"),
                bytes,
                depth + 1,
            )
        }
        Value::Array(items) if descend && !items.is_empty() => {
            let index = usize::from(bytes.u8()) % items.len();
            match bytes.u8() % 16 {
                0 => drop(items.remove(index)),
                1 => items.push(items[index].clone()),
                _ => mutate(&mut items[index], bytes, depth + 1),
            }
        }
        _ => *value = new_value(value, bytes),
    }
}

/// A replacement for `old`: a near variant of it, or a value of another kind.
fn new_value(old: &Value, bytes: &mut Bytes) -> Value {
    let text = |bytes: &mut Bytes| {
        let length = usize::from(bytes.u8() % 64);
        String::from_utf8_lossy(bytes.take(length)).into_owned()
    };
    match bytes.u8() % 12 {
        0 => Value::Null,
        1 => Value::Bool(bytes.bool()),
        2 => Value::from(bytes.u64()),
        3 => Value::from(-(i64::from(bytes.u32()))),
        4 => Value::from(u64::from(bytes.u8())),
        5 => Value::String(text(bytes)),
        // A decimal: digits, a point, digits (amounts, balances).
        6 | 7 => {
            let whole = bytes.u64() % 10u64.pow(u32::from(bytes.u8() % 20));
            let fraction = bytes.u8() % 20;
            let digits: String = (0..fraction)
                .map(|_| char::from(b'0' + bytes.u8() % 10))
                .collect();
            let negative = if bytes.u8() % 8 == 0 { "-" } else { "" };
            Value::String(match fraction {
                0 => format!("{negative}{whole}"),
                _ => format!("{negative}{whole}.{digits}"),
            })
        }
        // The old value, a little off.
        8 | 9 => match old {
            Value::String(old) => {
                let mut changed = old.clone().into_bytes();
                if !changed.is_empty() {
                    let at = usize::from(bytes.u8()) % changed.len();
                    changed[at] = bytes.u8();
                }
                Value::String(String::from_utf8_lossy(&changed).into_owned())
            }
            Value::Number(number) => {
                let n = number.as_u64().unwrap_or(0);
                Value::from(n.wrapping_add(u64::from(bytes.u8())).wrapping_sub(128))
            }
            Value::Bool(flag) => Value::Bool(!flag),
            other => other.clone(),
        },
        10 => Value::Array(vec![]),
        _ => Value::Object(Default::default()),
    }
}

/// Mode 6: the unchanged export with one kept checkpoint (and a consistency proof).
fn anchored(base: &Base, bytes: &mut Bytes) {
    let tree = tree();
    let to_seq = tree.size();
    let size = 1 + bytes.u64() % to_seq;
    let true_root = tree.root_at_size(size).expect("within the tree");
    let mut root = true_root;
    if bytes.bool() {
        let flip = bytes.hash();
        for (byte, flip) in root.0.iter_mut().zip(flip.0) {
            *byte ^= flip;
        }
    }
    let mut note = sign_checkpoint(ORIGIN, size, &root, &signing_key()).expect("signs");
    if bytes.u8() % 8 == 0 {
        let mut changed = note.into_bytes();
        let at = usize::from(bytes.u16()) % changed.len();
        changed[at] ^= bytes.u8() | 1;
        note = String::from_utf8_lossy(&changed).into_owned();
    }
    // A proof to a size within the export's own trees, true or forged.
    let proof_to = base.start + bytes.u64() % (to_seq - base.start + 1);
    let consistency = (bytes.u8() % 4 != 0).then(|| {
        let mut proof = tree
            .consistency_proof(size.min(proof_to), proof_to)
            .unwrap_or_default();
        match bytes.u8() % 4 {
            0 if !proof.is_empty() => {
                let at = usize::from(bytes.u8()) % proof.len();
                proof[at].0[usize::from(bytes.u8() % 32)] ^= bytes.u8() | 1;
            }
            1 => proof.push(bytes.hash()),
            2 => drop(proof.pop()),
            _ => {}
        }
        AnchorProof {
            to_size: proof_to,
            proof,
        }
    });
    let anchor = Anchor {
        name: "kept".into(),
        note: note.clone(),
        consistency: consistency.clone(),
    };
    let keys = [TrustedKey::new(public_key())];
    let verification = Verification {
        keys: &keys,
        anchors: std::slice::from_ref(&anchor),
    };
    let result = verify_export_with(split_lines(&base.file), &verification, &mut |_| {});

    // What the anchor, as given, says.
    let stated = note
        .rfind("\n\n")
        .and_then(|end| Checkpoint::from_note_text(&note[..end + 1]).ok());
    if result.is_ok() {
        let stated = stated.expect("a verified anchor parses");
        let truth = tree.root_at_size(stated.size);
        assert_eq!(
            truth.as_ref(),
            Ok(&stated.root),
            "an anchor whose root is not the tree's root at size {} verified",
            stated.size
        );
        // Before the opening, unless its tree is a prefix of the opening's frontier, only the
        // consistency proof carries the anchor.
        if stated.size < base.start && !is_frontier_prefix(stated.size, base.start) {
            let proof = consistency.expect("an anchor before the opening needs a proof");
            let honest: Vec<Hash32> = tree
                .consistency_proof(stated.size, proof.to_size)
                .expect("sizes in the tree");
            assert_eq!(
                proof.proof, honest,
                "a forged consistency proof carried an anchor"
            );
        }
    } else if root == true_root && note_is_signed(&note, size, &root) {
        let proof_is_true = consistency.as_ref().is_some_and(|proof| {
            tree.consistency_proof(size.min(proof.to_size), proof.to_size)
                .ok()
                .as_ref()
                == Some(&proof.proof)
                && proof.to_size >= size
        });
        if size >= base.start || is_frontier_prefix(size, base.start) || proof_is_true {
            panic!(
                "an honest anchor at size {size} was refused: {:?}",
                result.err()
            );
        }
    }
}

/// Whether the tree of `size` leaves is made of the leading complete subtrees of the frontier
/// of a tree of `start` leaves: `start` with some of its lowest bits cleared.
fn is_frontier_prefix(size: u64, start: u64) -> bool {
    size > 0 && (0..64).any(|bits| size == start & (u64::MAX << bits))
}

/// Whether the (possibly changed) note is still exactly the one signed over `(size, root)`.
fn note_is_signed(note: &str, size: u64, root: &Hash32) -> bool {
    sign_checkpoint(ORIGIN, size, root, &signing_key()).as_deref() == Ok(note)
}
