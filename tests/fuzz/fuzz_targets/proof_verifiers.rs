//! Proof verifiers (`audit::merkle::verify_inclusion`, `verify_consistency`,
//! `root_from_inclusion_proof`) and signed checkpoint notes (`audit::checkpoint::open_note`,
//! `open_checkpoint`, `Checkpoint::from_note_text`, `NoteVerifier::from_verifier_key_string`).
//!
//! Modes (byte 0):
//! 0. arbitrary sizes, indexes, hashes and proofs: no panic;
//! 1. inclusion: a tree of 1 to 1,024 leaves derived from the input (`InMemoryMerkleTree`), a claim
//!    (index, tree size) and its true proof, then the claim and the proof changed by the fuzzer: it
//!    verifies against the true root of that size iff it IS the true proof of the leaf at that
//!    index;
//! 2. consistency: the same for a proof between two sizes of the tree;
//! 3. notes: arbitrary text opened as a signed note and as a checkpoint with the fixed key; an
//!    accepted checkpoint body prints back to the same text; an accepted verifier key string reads
//!    back to the same verifier;
//! 4. forged notes: a checkpoint signed with the fixed key, then changed by the fuzzer: if it still
//!    opens with that key, the text it opens to is the one signed.
//!
//! Properties: as above, and nothing panics.
#![no_main]

use ledger::audit::checkpoint::{
    open_checkpoint, open_note, sign_checkpoint_at, Checkpoint, NoteVerifier,
};
use ledger::audit::merkle::{
    leaf_hash_of_data, root_from_inclusion_proof, verify_consistency, verify_inclusion,
    InMemoryMerkleTree,
};
use ledger::audit::Hash32;
use ledger_fuzz::{at, note_verifier, signing_key, Bytes, ORIGIN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    match bytes.u8() % 5 {
        0 => arbitrary_proofs(&mut bytes),
        1 => forged_inclusion(&mut bytes),
        2 => forged_consistency(&mut bytes),
        3 => notes(bytes.rest()),
        _ => forged_note(&mut bytes),
    }
});

fn hashes(bytes: &mut Bytes) -> Vec<Hash32> {
    let count = usize::from(bytes.u8() % 80);
    let mut hashes = Vec::with_capacity(count);
    while hashes.len() < count && !bytes.is_empty() {
        hashes.push(bytes.hash());
    }
    hashes
}

/// Sizes near the edges (0, 1, powers of two, `u64::MAX`) more often than at random.
fn size(bytes: &mut Bytes) -> u64 {
    match bytes.u8() % 4 {
        0 => u64::from(bytes.u8()),
        1 => 1u64 << (bytes.u8() % 64),
        2 => (1u64 << (bytes.u8() % 64))
            .wrapping_add(u64::from(bytes.u8()))
            .wrapping_sub(128),
        _ => bytes.u64(),
    }
}

fn arbitrary_proofs(bytes: &mut Bytes) {
    let (index, tree_size, old_size) = (size(bytes), size(bytes), size(bytes));
    let (leaf, root, old_root) = (bytes.hash(), bytes.hash(), bytes.hash());
    let proof = hashes(bytes);
    let _ = root_from_inclusion_proof(index, tree_size, &leaf, &proof);
    let _ = verify_inclusion(index, tree_size, &leaf, &proof, &root);
    let _ = verify_consistency(old_size, tree_size, &old_root, &root, &proof);
}

/// A tree of 1 to 1,024 distinct leaves, derived from two bytes of the input.
fn tree(bytes: &mut Bytes) -> (InMemoryMerkleTree, Vec<Hash32>) {
    let count = 1 + usize::from(bytes.u16() % 1024);
    let salt = bytes.u8();
    let leaves: Vec<Hash32> = (0..count as u32)
        .map(|i| {
            let mut data = i.to_le_bytes().to_vec();
            data.push(salt);
            leaf_hash_of_data(&data)
        })
        .collect();
    (InMemoryMerkleTree::from_leaf_hashes(leaves.clone()), leaves)
}

/// Changes a proof as the bytes say: a hash's byte, a hash replaced, one added, one dropped,
/// two swapped, another proof's hashes.
fn mutate_proof(proof: &mut Vec<Hash32>, bytes: &mut Bytes) {
    let rounds = bytes.u8() % 4;
    for _ in 0..rounds {
        match bytes.u8() % 6 {
            0 if !proof.is_empty() => {
                let at = usize::from(bytes.u8()) % proof.len();
                proof[at].0[usize::from(bytes.u8() % 32)] ^= bytes.u8();
            }
            1 if !proof.is_empty() => {
                let at = usize::from(bytes.u8()) % proof.len();
                proof[at] = bytes.hash();
            }
            2 => {
                let at = usize::from(bytes.u8()) % (proof.len() + 1);
                proof.insert(at, bytes.hash());
            }
            3 if !proof.is_empty() => {
                let at = usize::from(bytes.u8()) % proof.len();
                proof.remove(at);
            }
            4 if proof.len() >= 2 => {
                let (a, b) = (
                    usize::from(bytes.u8()) % proof.len(),
                    usize::from(bytes.u8()) % proof.len(),
                );
                proof.swap(a, b);
            }
            _ => {}
        }
    }
}

fn forged_inclusion(bytes: &mut Bytes) {
    let (tree, leaves) = tree(bytes);
    let n = tree.size();
    // The tree size is bound to its root (a checkpoint signs both); any size of this tree.
    let tree_size = 1 + bytes.u64() % n;
    let index = bytes.u64() % tree_size;
    let root = tree.root_at_size(tree_size).expect("a size of the tree");
    let proof = tree
        .inclusion_proof(index, tree_size)
        .expect("a leaf of the tree");
    let leaf = leaves[index as usize];
    verify_inclusion(index, tree_size, &leaf, &proof, &root).unwrap_or_else(|error| {
        panic!("the true proof of leaf {index} of {tree_size} fails: {error}")
    });

    // The claim and the proof as the fuzzer changes them.
    let claimed_index = match bytes.u8() % 4 {
        0 => bytes.u64(),
        1 => index ^ u64::from(bytes.u8()),
        _ => index,
    };
    let claimed_leaf = match bytes.u8() % 4 {
        0 => bytes.hash(),
        1 => leaves[usize::from(bytes.u16()) % leaves.len()],
        _ => leaf,
    };
    let mut forged = proof.clone();
    mutate_proof(&mut forged, bytes);
    let verified =
        verify_inclusion(claimed_index, tree_size, &claimed_leaf, &forged, &root).is_ok();
    let honest = claimed_index < tree_size
        && leaves[claimed_index as usize] == claimed_leaf
        && tree.inclusion_proof(claimed_index, tree_size).ok().as_ref() == Some(&forged);
    assert_eq!(
        verified, honest,
        "inclusion of leaf {claimed_index} in {tree_size} (true: {index}): forged {forged:?}, \
         true {proof:?}"
    );
}

fn forged_consistency(bytes: &mut Bytes) {
    let (tree, _) = tree(bytes);
    let n = tree.size();
    let new_size = bytes.u64() % (n + 1);
    let old_size = bytes.u64() % (new_size + 1);
    let root = |size: u64| tree.root_at_size(size).expect("a size of the tree");
    let proof = tree
        .consistency_proof(old_size, new_size)
        .expect("sizes of the tree");
    verify_consistency(old_size, new_size, &root(old_size), &root(new_size), &proof)
        .unwrap_or_else(|error| {
            panic!("the true proof from {old_size} to {new_size} fails: {error}")
        });

    // Other sizes of the same tree, each with its own true root, and a changed proof.
    let (claimed_old, claimed_new) = match bytes.u8() % 4 {
        0 => {
            let claimed_new = bytes.u64() % (n + 1);
            (bytes.u64() % (claimed_new + 1), claimed_new)
        }
        _ => (old_size, new_size),
    };
    let mut forged = proof.clone();
    mutate_proof(&mut forged, bytes);
    let verified = verify_consistency(
        claimed_old,
        claimed_new,
        &root(claimed_old),
        &root(claimed_new),
        &forged,
    )
    .is_ok();
    let honest = tree
        .consistency_proof(claimed_old, claimed_new)
        .ok()
        .as_ref()
        == Some(&forged);
    assert_eq!(
        verified, honest,
        "consistency from {claimed_old} to {claimed_new} (true: {old_size} to {new_size}): forged \
         {forged:?}, true {proof:?}"
    );
}

fn notes(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let known = [note_verifier()];
    let _ = open_note(text, &known);
    let _ = open_checkpoint(text, ORIGIN, &known);
    if let Ok(checkpoint) = Checkpoint::from_note_text(text) {
        let _ = checkpoint.signed_at();
        assert_eq!(
            checkpoint.to_note_text().as_deref(),
            Ok(text),
            "an accepted checkpoint body does not print back to its text"
        );
    }
    if let Ok(verifier) = NoteVerifier::from_verifier_key_string(text) {
        let again = NoteVerifier::from_verifier_key_string(&verifier.to_verifier_key_string());
        assert_eq!(again, Ok(verifier), "a verifier key does not read back");
    }
}

fn forged_note(bytes: &mut Bytes) {
    let size = size(bytes);
    let root = bytes.hash();
    let signed_at = at(i64::from(bytes.u32()));
    let note = sign_checkpoint_at(ORIGIN, size, &root, signed_at, &signing_key()).expect("signs");
    let text = &note[..note.rfind("\n\n").expect("a signed note") + 1];

    let mut changed = note.clone().into_bytes();
    match bytes.u8() % 4 {
        // Bytes changed in place.
        0 | 1 => {
            while bytes.len() >= 3 && !changed.is_empty() {
                let at = usize::from(bytes.u16()) % changed.len();
                changed[at] ^= bytes.u8();
            }
        }
        // Bytes inserted.
        2 => {
            let at = usize::from(bytes.u16()) % (changed.len() + 1);
            let inserted = bytes.rest().to_vec();
            changed.splice(at..at, inserted);
        }
        // A text of the fuzzer's above the signature block.
        _ => {
            let block = note[text.len()..].as_bytes().to_vec();
            changed = bytes.rest().to_vec();
            changed.extend_from_slice(&block);
        }
    }
    let Ok(changed) = String::from_utf8(changed) else {
        return;
    };
    let known = [note_verifier()];
    if let Ok(opened) = open_note(&changed, &known) {
        assert_eq!(
            opened.text, text,
            "a changed note opened to a text that was not signed"
        );
    }
    if let Ok(checkpoint) = open_checkpoint(&changed, ORIGIN, &known) {
        assert_eq!(
            (checkpoint.size, checkpoint.root),
            (size, root),
            "a forged checkpoint opened"
        );
    }
}
