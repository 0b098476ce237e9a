//! The Merkle tree of a ledger's journal, as RFC 6962 §2.1 (= RFC 9162 §2.1) defines it.
//!
//! Leaves are the event hashes in `seq` order: leaf `i` (0-based) is the event with `seq = i + 1`.
//! `leaf = SHA-256(0x00 ‖ event hash)`, `node = SHA-256(0x01 ‖ left ‖ right)`, and the root of the
//! empty tree is `SHA-256("")`.
//!
//! Everything here is pure: no I/O, no clock, no randomness. The storage layer plugs in through
//! [`SubtreeHashes`] (synchronous) or through the plan-then-fetch functions
//! ([`inclusion_proof_ranges`], [`subtrees_needed`], [`stored_children`],
//! [`subtree_from_children`], [`proof_from_ranges`]) when its reads are asynchronous.
//!
//! Why proofs only need complete subtrees: in RFC 6962's recursive definitions (PATH, PROOF,
//! SUBPROOF) every hash of a proof is MTH of a range `D[start:end)` that is a node of the tree, so
//! `start` is a multiple of the largest power of two not above `end - start`. Such a range splits
//! into the complete, aligned subtrees given by the binary digits of its length, largest first,
//! and its MTH is their hashes folded from the right. [`LeafRange`] holds exactly such ranges.
//!
//! Storage layout this module supports (see [`stored_children`]): the leaf hashes, plus the root of
//! every complete subtree at levels 8, 16, 24, … (256, 65,536, 16,777,216, … leaves). Any complete
//! subtree is then one read of at most 128 consecutive stored hashes plus at most 127 SHA-256
//! compressions; a whole inclusion or consistency proof reads about 255 hashes per 8 levels of
//! tree height (≈ 1,000 hashes for 2^32 leaves), usually in one query.
//!
//! Example of the asynchronous flow (`db` is the storage layer, not part of this module):
//! ```text
//! let ranges = merkle::inclusion_proof_ranges(leaf_index, tree_size)?;
//! let mut fetched = BTreeMap::new();
//! for id in merkle::subtrees_needed(&ranges) {
//!     let children = match merkle::stored_children(id) {
//!         StoredChildren::LeafHashes { first_leaf, count } => {
//!             db.leaf_hashes(first_leaf, count).await?
//!         }
//!         StoredChildren::StoredNodes { level, first_index, count } => {
//!             db.stored_nodes(level, first_index, count).await?
//!         }
//!     };
//!     fetched.insert(id, merkle::subtree_from_children(id, &children)?);
//! }
//! let proof = merkle::proof_from_ranges(&ranges, &fetched)?;
//! ```

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::audit::hash::Hash32;

/// The largest tree this module handles. Keeping sizes at or below 2^63 means that
/// `(index + 1) << level` and every other leaf position fits in a `u64` without overflow checks
/// at each use; a ledger will never come near it.
pub const MAX_TREE_SIZE: u64 = 1 << 63;

/// The storage layer keeps the roots of complete subtrees whose level is a positive multiple of
/// this stride (256 leaves, 65,536 leaves, …), so any other subtree has at most 2^7 stored
/// children.
pub const STORED_LEVEL_STRIDE: u32 = 8;

/// RFC 6962 domain separation: a leaf hash can never be mistaken for a node hash.
const LEAF_HASH_PREFIX: u8 = 0x00;
const NODE_HASH_PREFIX: u8 = 0x01;

/// Why a request to this module was refused (bad sizes, indexes, stored data of the wrong shape).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("tree size {tree_size} exceeds the maximum of {MAX_TREE_SIZE}")]
    TreeTooLarge { tree_size: u64 },
    #[error("leaf index {leaf_index} is not below the tree size {tree_size}")]
    LeafIndexOutOfRange { leaf_index: u64, tree_size: u64 },
    #[error("old tree size {old_size} is larger than the new tree size {new_size}")]
    OldSizeAboveNewSize { old_size: u64, new_size: u64 },
    #[error("leaf range [{start}, {end}) is empty, too large, or not a node of a Merkle tree")]
    InvalidLeafRange { start: u64, end: u64 },
    #[error("subtree at level {level} index {index} lies beyond the maximum tree size")]
    InvalidSubtree { level: u32, index: u64 },
    #[error("a frontier of size {size} holds {expected} hashes, but {actual} were given")]
    FrontierHashCountMismatch {
        size: u64,
        expected: usize,
        actual: usize,
    },
    #[error("subtree at level {level} index {index} is not available")]
    SubtreeNotAvailable { level: u32, index: u64 },
    #[error("subtree at level {level} index {index} needs {expected} child hashes, got {actual}")]
    ChildHashCountMismatch {
        level: u32,
        index: u64,
        expected: u64,
        actual: usize,
    },
}

/// Why a proof did not verify. Every variant names the check that failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("leaf index {leaf_index} is not below the tree size {tree_size}")]
    LeafIndexOutOfRange { leaf_index: u64, tree_size: u64 },
    #[error("old tree size {old_size} is larger than the new tree size {new_size}")]
    OldSizeAboveNewSize { old_size: u64, new_size: u64 },
    #[error("the proof has more hashes than a proof for these tree sizes")]
    ProofTooLong,
    #[error("the proof has fewer hashes than a proof for these tree sizes")]
    ProofTooShort,
    #[error("a consistency proof between different non-empty tree sizes cannot be empty")]
    ConsistencyProofEmpty,
    #[error("a consistency proof from the empty tree or between equal sizes must be empty")]
    ConsistencyProofNotEmpty,
    #[error("the proof leads to root {computed}, not to the expected root {expected}")]
    RootMismatch { computed: Hash32, expected: Hash32 },
    #[error("the proof leads to old root {computed}, not to the expected old root {expected}")]
    OldRootMismatch { computed: Hash32, expected: Hash32 },
    #[error("the proof leads to new root {computed}, not to the expected new root {expected}")]
    NewRootMismatch { computed: Hash32, expected: Hash32 },
}

// ---------------------------------------------------------------------------------------------
// Hashing.

/// RFC 6962 leaf hash of arbitrary leaf data; used by the published test vectors.
pub fn leaf_hash_of_data(data: &[u8]) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_HASH_PREFIX]);
    hasher.update(data);
    Hash32(hasher.finalize().into())
}

/// The leaf hash of a journal event: the leaf data is the event's 32-byte hash.
pub fn leaf_hash(event_hash: &Hash32) -> Hash32 {
    leaf_hash_of_data(&event_hash.0)
}

/// RFC 6962 interior node hash.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update([NODE_HASH_PREFIX]);
    hasher.update(left.0);
    hasher.update(right.0);
    Hash32(hasher.finalize().into())
}

/// MTH({}) = SHA-256 of the empty string.
pub fn empty_tree_root() -> Hash32 {
    Hash32::sha256(b"")
}

/// Folds the hashes of consecutive complete subtrees, largest (leftmost) first, into the MTH of
/// the range they cover. RFC 6962 splits a range at its largest power of two below its length,
/// so the leftmost subtree pairs with the MTH of everything to its right: a fold from the right.
fn fold_from_right(subtree_hashes_left_to_right: &[Hash32]) -> Hash32 {
    match subtree_hashes_left_to_right.split_last() {
        None => empty_tree_root(),
        Some((rightmost, others)) => others
            .iter()
            .rev()
            .fold(*rightmost, |right, left| node_hash(left, &right)),
    }
}

/// Largest power of two strictly below `count`; RFC 6962's split point `k`. Needs `count >= 2`.
fn largest_power_of_two_below(count: u64) -> u64 {
    assert!(count >= 2);
    let split = 1u64 << (63 - (count - 1).leading_zeros());
    assert!(split < count && split * 2 >= count);
    split
}

fn check_tree_size(tree_size: u64) -> Result<(), MerkleError> {
    if tree_size > MAX_TREE_SIZE {
        return Err(MerkleError::TreeTooLarge { tree_size });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Subtrees and ranges.

/// A complete, aligned subtree: the `2^level` leaves `[index·2^level, (index+1)·2^level)`.
/// Level 0 is a single leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubtreeId {
    level: u32,
    index: u64,
}

impl SubtreeId {
    /// `None` when the subtree would reach beyond [`MAX_TREE_SIZE`].
    pub fn new(level: u32, index: u64) -> Option<SubtreeId> {
        if level > 63 {
            return None;
        }
        let subtree_count_at_level = MAX_TREE_SIZE >> level;
        if index >= subtree_count_at_level {
            return None;
        }
        Some(SubtreeId { level, index })
    }

    pub fn level(&self) -> u32 {
        self.level
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    pub fn first_leaf(&self) -> u64 {
        self.index << self.level
    }

    /// One past the last leaf.
    pub fn end_leaf(&self) -> u64 {
        (self.index + 1) << self.level
    }

    pub fn leaf_count(&self) -> u64 {
        1 << self.level
    }

    /// Whether the storage layer keeps this subtree's root (levels 8, 16, …).
    pub fn is_stored_level(&self) -> bool {
        self.level > 0 && self.level.is_multiple_of(STORED_LEVEL_STRIDE)
    }
}

/// A range of leaves `[start, end)` that is a node of some Merkle tree: non-empty, and `start`
/// is a multiple of the largest power of two not above its length. Only such ranges occur in
/// proofs, and only for them is MTH the fold of complete, aligned subtrees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LeafRange {
    start: u64,
    end: u64,
}

impl LeafRange {
    pub fn new(start: u64, end: u64) -> Result<LeafRange, MerkleError> {
        let invalid = MerkleError::InvalidLeafRange { start, end };
        if start >= end || end > MAX_TREE_SIZE {
            return Err(invalid);
        }
        let largest_subtree = 1u64 << (63 - (end - start).leading_zeros());
        if !start.is_multiple_of(largest_subtree) {
            return Err(invalid);
        }
        Ok(LeafRange { start, end })
    }

    pub fn start(&self) -> u64 {
        self.start
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    /// The complete, aligned subtrees that make up this range, left to right (largest first):
    /// one per set bit of the range's length.
    pub fn subtrees(&self) -> Vec<SubtreeId> {
        let mut subtrees = Vec::new();
        let mut position = self.start;
        while position < self.end {
            let remaining = self.end - position;
            let level = 63 - remaining.leading_zeros();
            assert_eq!(position % (1u64 << level), 0, "a LeafRange is aligned");
            subtrees.push(SubtreeId {
                level,
                index: position >> level,
            });
            position += 1u64 << level;
        }
        assert_eq!(position, self.end);
        assert_eq!(
            subtrees.len(),
            (self.end - self.start).count_ones() as usize
        );
        subtrees
    }
}

/// Where the root of any complete subtree comes from. The storage layer implements it over its
/// tables; [`InMemoryMerkleTree`] implements it over a vector of leaf hashes. The error type
/// takes [`MerkleError`] so that this module's own refusals travel through the same `Result`.
pub trait SubtreeHashes {
    type Error: From<MerkleError>;

    /// The root of the complete subtree `id`. Callers in this module only ask for subtrees that
    /// lie entirely inside the tree size they are working on.
    fn complete_subtree(&self, id: SubtreeId) -> Result<Hash32, Self::Error>;
}

/// Subtree roots fetched ahead of time, e.g. by an asynchronous storage layer for the ids that
/// [`subtrees_needed`] listed.
impl SubtreeHashes for BTreeMap<SubtreeId, Hash32> {
    type Error = MerkleError;

    fn complete_subtree(&self, id: SubtreeId) -> Result<Hash32, MerkleError> {
        self.get(&id)
            .copied()
            .ok_or(MerkleError::SubtreeNotAvailable {
                level: id.level,
                index: id.index,
            })
    }
}

/// MTH of a range of leaves, from the roots of its complete subtrees (at most 63 look-ups).
pub fn range_hash<S: SubtreeHashes>(range: LeafRange, source: &S) -> Result<Hash32, S::Error> {
    let subtree_hashes = range
        .subtrees()
        .into_iter()
        .map(|id| source.complete_subtree(id))
        .collect::<Result<Vec<Hash32>, S::Error>>()?;
    Ok(fold_from_right(&subtree_hashes))
}

/// The root of the tree of the first `tree_size` leaves (MTH(D\[0:tree_size\])).
pub fn tree_root<S: SubtreeHashes>(tree_size: u64, source: &S) -> Result<Hash32, S::Error> {
    check_tree_size(tree_size)?;
    if tree_size == 0 {
        return Ok(empty_tree_root());
    }
    range_hash(LeafRange::new(0, tree_size)?, source)
}

// ---------------------------------------------------------------------------------------------
// Proof generation.

/// The ranges whose MTH form the inclusion proof PATH(leaf_index, D\[0:tree_size\]) of RFC 6962
/// §2.1.1, in proof order (nearest the leaf first).
pub fn inclusion_proof_ranges(
    leaf_index: u64,
    tree_size: u64,
) -> Result<Vec<LeafRange>, MerkleError> {
    check_tree_size(tree_size)?;
    if leaf_index >= tree_size {
        return Err(MerkleError::LeafIndexOutOfRange {
            leaf_index,
            tree_size,
        });
    }
    // Walk from the root down to the leaf; each step keeps the half holding the leaf and records
    // the other half. RFC 6962 lists the proof from the leaf up, hence the reverse at the end.
    let mut siblings_from_root = Vec::new();
    let (mut start, mut end) = (0u64, tree_size);
    while end - start > 1 {
        let split = start + largest_power_of_two_below(end - start);
        if leaf_index < split {
            siblings_from_root.push(LeafRange::new(split, end)?);
            end = split;
        } else {
            siblings_from_root.push(LeafRange::new(start, split)?);
            start = split;
        }
    }
    assert_eq!((start, end), (leaf_index, leaf_index + 1));
    siblings_from_root.reverse();
    Ok(siblings_from_root)
}

/// The ranges whose MTH form the consistency proof PROOF(old_size, D\[0:new_size\]) of RFC 6962
/// §2.1.2, in proof order. Sizes RFC 6962 leaves undefined get the empty proof, which
/// [`verify_consistency`] accepts only with matching roots: `old_size == new_size`, and
/// `old_size == 0` (every tree extends the empty tree).
pub fn consistency_proof_ranges(
    old_size: u64,
    new_size: u64,
) -> Result<Vec<LeafRange>, MerkleError> {
    check_tree_size(new_size)?;
    if old_size > new_size {
        return Err(MerkleError::OldSizeAboveNewSize { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start:end), complete_old_subtree) unrolled; `old_end` is m in absolute terms.
    let old_end = old_size;
    let mut hashes_from_root = Vec::new();
    let (mut start, mut end) = (0u64, new_size);
    let mut old_subtree_is_whole_old_tree = true;
    while old_end < end {
        let split = start + largest_power_of_two_below(end - start);
        if old_end <= split {
            hashes_from_root.push(LeafRange::new(split, end)?);
            end = split;
        } else {
            hashes_from_root.push(LeafRange::new(start, split)?);
            start = split;
            old_subtree_is_whole_old_tree = false;
        }
    }
    assert_eq!(old_end, end);
    // SUBPROOF(m, D[m], true) = {}: the verifier already has the old root. Otherwise the proof
    // must carry MTH of the part of the old tree this recursion ended in.
    if !old_subtree_is_whole_old_tree {
        hashes_from_root.push(LeafRange::new(start, end)?);
    }
    hashes_from_root.reverse();
    Ok(hashes_from_root)
}

/// Every complete subtree the given proof ranges need, sorted and without duplicates, so that a
/// storage layer can fetch them in one batch.
pub fn subtrees_needed(ranges: &[LeafRange]) -> Vec<SubtreeId> {
    let mut ids: Vec<SubtreeId> = ranges.iter().flat_map(LeafRange::subtrees).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The proof hashes for the given ranges, in the same order.
pub fn proof_from_ranges<S: SubtreeHashes>(
    ranges: &[LeafRange],
    source: &S,
) -> Result<Vec<Hash32>, S::Error> {
    ranges
        .iter()
        .map(|range| range_hash(*range, source))
        .collect()
}

/// RFC 6962 §2.1.1 inclusion proof of leaf `leaf_index` in the tree of size `tree_size`.
pub fn inclusion_proof<S: SubtreeHashes>(
    leaf_index: u64,
    tree_size: u64,
    source: &S,
) -> Result<Vec<Hash32>, S::Error> {
    let ranges = inclusion_proof_ranges(leaf_index, tree_size)?;
    proof_from_ranges(&ranges, source)
}

/// RFC 6962 §2.1.2 consistency proof that the tree of size `old_size` is a prefix of the tree of
/// size `new_size`.
pub fn consistency_proof<S: SubtreeHashes>(
    old_size: u64,
    new_size: u64,
    source: &S,
) -> Result<Vec<Hash32>, S::Error> {
    let ranges = consistency_proof_ranges(old_size, new_size)?;
    proof_from_ranges(&ranges, source)
}

// ---------------------------------------------------------------------------------------------
// Storage helpers: leaf hashes plus the roots of complete subtrees at levels 8, 16, ….

/// Which stored hashes a complete subtree is computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredChildren {
    /// Leaf hashes `[first_leaf, first_leaf + count)`.
    LeafHashes { first_leaf: u64, count: u64 },
    /// Stored subtree roots at `level` (a positive multiple of [`STORED_LEVEL_STRIDE`]) with
    /// indexes `[first_index, first_index + count)`.
    StoredNodes {
        level: u32,
        first_index: u64,
        count: u64,
    },
}

/// The stored hashes under `id` at the nearest stored level at or below it: one stored node when
/// `id` itself is stored, otherwise at most 128 consecutive hashes (1, 2, 4, …, 128).
pub fn stored_children(id: SubtreeId) -> StoredChildren {
    let stored_level = id.level - id.level % STORED_LEVEL_STRIDE;
    let levels_above_stored = id.level - stored_level;
    let count = 1u64 << levels_above_stored;
    assert!(count <= 1 << (STORED_LEVEL_STRIDE - 1));
    let first_index = id.index << levels_above_stored;
    if stored_level == 0 {
        StoredChildren::LeafHashes {
            first_leaf: first_index,
            count,
        }
    } else {
        StoredChildren::StoredNodes {
            level: stored_level,
            first_index,
            count,
        }
    }
}

/// The root of `id` from the hashes [`stored_children`] named, left to right. Costs one SHA-256
/// per pair: at most 127. A wrong number of hashes (a storage bug) is an error, not a panic.
pub fn subtree_from_children(id: SubtreeId, children: &[Hash32]) -> Result<Hash32, MerkleError> {
    let expected = match stored_children(id) {
        StoredChildren::LeafHashes { count, .. } => count,
        StoredChildren::StoredNodes { count, .. } => count,
    };
    if children.len() as u64 != expected {
        return Err(MerkleError::ChildHashCountMismatch {
            level: id.level,
            index: id.index,
            expected,
            actual: children.len(),
        });
    }
    let mut layer = children.to_vec();
    while layer.len() > 1 {
        assert_eq!(
            layer.len() % 2,
            0,
            "a complete subtree has a power-of-two width"
        );
        layer = layer
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    Ok(layer[0])
}

// ---------------------------------------------------------------------------------------------
// Frontier (compact range).

/// The roots of the complete subtrees that make up a tree of `size` leaves, largest first: one
/// per set bit of `size`. Enough to append leaves and to compute the root, in O(log n) space,
/// so each committed batch extends the stored frontier without rebuilding the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleFrontier {
    size: u64,
    hashes: Vec<Hash32>,
}

impl Default for MerkleFrontier {
    fn default() -> Self {
        MerkleFrontier::new()
    }
}

impl MerkleFrontier {
    /// The frontier of the empty tree.
    pub fn new() -> MerkleFrontier {
        MerkleFrontier {
            size: 0,
            hashes: Vec::new(),
        }
    }

    /// Restores a frontier saved with [`MerkleFrontier::size`] and [`MerkleFrontier::hashes`].
    /// The hash count must equal the number of set bits of `size`.
    pub fn from_parts(size: u64, hashes: Vec<Hash32>) -> Result<MerkleFrontier, MerkleError> {
        check_tree_size(size)?;
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(MerkleError::FrontierHashCountMismatch {
                size,
                expected,
                actual: hashes.len(),
            });
        }
        Ok(MerkleFrontier { size, hashes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The subtree roots, largest (leftmost) first; what [`MerkleFrontier::from_parts`] takes.
    pub fn hashes(&self) -> &[Hash32] {
        &self.hashes
    }

    /// Which subtree each of [`MerkleFrontier::hashes`] is the root of.
    pub fn subtree_ids(&self) -> Vec<SubtreeId> {
        if self.size == 0 {
            return Vec::new();
        }
        LeafRange::new(0, self.size)
            .expect("a non-empty prefix of a tree is a valid range")
            .subtrees()
    }

    /// MTH of the current tree: O(log n) hashes.
    pub fn root(&self) -> Hash32 {
        fold_from_right(&self.hashes)
    }

    pub fn append_leaf_hash(&mut self, leaf_hash: Hash32) -> Result<(), MerkleError> {
        self.append_leaf_hash_reporting_subtrees(leaf_hash, |_, _| {})
    }

    pub fn append_event_hash(&mut self, event_hash: &Hash32) -> Result<(), MerkleError> {
        self.append_leaf_hash(leaf_hash(event_hash))
    }

    /// Appends a leaf and reports every complete subtree the append completes (the leaf itself at
    /// level 0, then each merge), so the storage layer can keep the ones at stored levels
    /// (see [`SubtreeId::is_stored_level`]). Amortised O(1) hashes, O(log n) at worst.
    pub fn append_leaf_hash_reporting_subtrees(
        &mut self,
        leaf_hash: Hash32,
        mut on_completed_subtree: impl FnMut(SubtreeId, Hash32),
    ) -> Result<(), MerkleError> {
        if self.size >= MAX_TREE_SIZE {
            return Err(MerkleError::TreeTooLarge {
                tree_size: self.size.saturating_add(1),
            });
        }
        let leaf_index = self.size;
        let mut level = 0u32;
        let mut hash = leaf_hash;
        on_completed_subtree(
            SubtreeId {
                level,
                index: leaf_index,
            },
            hash,
        );
        // Each trailing 1 bit of the old size is a complete subtree as tall as `hash` sitting
        // just left of it: merge the two into a subtree one level up.
        while (self.size >> level) & 1 == 1 {
            let left = self
                .hashes
                .pop()
                .expect("one frontier hash per set bit of the size");
            hash = node_hash(&left, &hash);
            level += 1;
            on_completed_subtree(
                SubtreeId {
                    level,
                    index: leaf_index >> level,
                },
                hash,
            );
        }
        self.hashes.push(hash);
        self.size += 1;
        assert_eq!(self.hashes.len(), self.size.count_ones() as usize);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// In-memory tree.

/// All complete subtrees of a tree held in memory, level by level: `levels[0]` are the leaf
/// hashes, `levels[l][i]` is the root of subtree (l, i). About 2n hashes (64 bytes per leaf);
/// built once in O(n), appended in amortised O(1). Serves proofs for any size up to its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InMemoryMerkleTree {
    levels: Vec<Vec<Hash32>>,
}

impl InMemoryMerkleTree {
    pub fn new() -> InMemoryMerkleTree {
        InMemoryMerkleTree { levels: Vec::new() }
    }

    pub fn from_leaf_hashes(leaf_hashes: Vec<Hash32>) -> InMemoryMerkleTree {
        let mut levels = vec![leaf_hashes];
        while levels.last().is_some_and(|level| level.len() >= 2) {
            let below = levels.last().expect("checked by the loop condition");
            let above = below
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(above);
        }
        InMemoryMerkleTree { levels }
    }

    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    pub fn append_leaf_hash(&mut self, leaf_hash: Hash32) -> Result<(), MerkleError> {
        check_tree_size(self.size() + 1)?;
        let mut level = 0usize;
        let mut hash = leaf_hash;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            let width = self.levels[level].len();
            // A node at an even position (odd width) waits for its right sibling.
            if width % 2 == 1 {
                return Ok(());
            }
            hash = node_hash(
                &self.levels[level][width - 2],
                &self.levels[level][width - 1],
            );
            level += 1;
        }
    }

    pub fn root(&self) -> Hash32 {
        self.root_at_size(self.size())
            .expect("the tree's own size is always available")
    }

    pub fn root_at_size(&self, tree_size: u64) -> Result<Hash32, MerkleError> {
        self.check_size_available(tree_size)?;
        tree_root(tree_size, self)
    }

    pub fn inclusion_proof(
        &self,
        leaf_index: u64,
        tree_size: u64,
    ) -> Result<Vec<Hash32>, MerkleError> {
        self.check_size_available(tree_size)?;
        inclusion_proof(leaf_index, tree_size, self)
    }

    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<Vec<Hash32>, MerkleError> {
        self.check_size_available(new_size)?;
        consistency_proof(old_size, new_size, self)
    }

    fn check_size_available(&self, tree_size: u64) -> Result<(), MerkleError> {
        if tree_size > self.size() {
            // Name the first leaf that is missing.
            return Err(MerkleError::SubtreeNotAvailable {
                level: 0,
                index: self.size(),
            });
        }
        Ok(())
    }
}

impl SubtreeHashes for InMemoryMerkleTree {
    type Error = MerkleError;

    fn complete_subtree(&self, id: SubtreeId) -> Result<Hash32, MerkleError> {
        let level = usize::try_from(id.level).ok();
        let index = usize::try_from(id.index).ok();
        level
            .zip(index)
            .and_then(|(level, index)| self.levels.get(level)?.get(index))
            .copied()
            .ok_or(MerkleError::SubtreeNotAvailable {
                level: id.level,
                index: id.index,
            })
    }
}

// ---------------------------------------------------------------------------------------------
// Verification, exactly as RFC 9162 §2.1.3.2 and §2.1.4.2 describe it.

/// RFC 9162 §2.1.3.2: the root that `proof` leads to from `leaf_hash` at `leaf_index` in a tree
/// of `tree_size` leaves.
pub fn root_from_inclusion_proof(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash32,
    proof: &[Hash32],
) -> Result<Hash32, VerifyError> {
    if leaf_index >= tree_size {
        return Err(VerifyError::LeafIndexOutOfRange {
            leaf_index,
            tree_size,
        });
    }
    let mut f_n = leaf_index;
    let mut s_n = tree_size - 1;
    let mut r = *leaf_hash;
    for p in proof {
        if s_n == 0 {
            return Err(VerifyError::ProofTooLong);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                (f_n, s_n) = shift_right_until_odd_or_zero(f_n, s_n);
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(VerifyError::ProofTooShort);
    }
    Ok(r)
}

/// RFC 9162 §2.1.3.2: whether `proof` shows `leaf_hash` at `leaf_index` in the tree of
/// `tree_size` leaves with root `root`.
pub fn verify_inclusion(
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: &Hash32,
    proof: &[Hash32],
    root: &Hash32,
) -> Result<(), VerifyError> {
    let computed = root_from_inclusion_proof(leaf_index, tree_size, leaf_hash, proof)?;
    if computed != *root {
        return Err(VerifyError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: whether `proof` shows that the tree of `old_size` leaves with root
/// `old_root` is a prefix of the tree of `new_size` leaves with root `new_root`.
///
/// RFC 9162 covers `0 < old_size < new_size`. The two other cases that must not fail on honest
/// input: equal sizes need an empty proof and equal roots; old size 0 needs an empty proof and
/// `old_root` equal to the empty tree's root.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash32,
    new_root: &Hash32,
    proof: &[Hash32],
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(VerifyError::OldSizeAboveNewSize { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return verify_trivial_consistency(old_size, old_root, new_root, proof);
    }
    // Step 1.
    let Some((first_proof_hash, rest_of_proof)) = proof.split_first() else {
        return Err(VerifyError::ConsistencyProofEmpty);
    };
    // Step 2: when the old tree is a complete subtree, the proof omits its root (the verifier
    // has it), so the walk starts from `old_root`.
    let (seed, path) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        (first_proof_hash, rest_of_proof)
    };
    // Steps 3 and 4.
    let mut f_n = old_size - 1;
    let mut s_n = new_size - 1;
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    // Steps 5 and 6.
    let mut f_r = *seed;
    let mut s_r = *seed;
    for c in path {
        if s_n == 0 {
            return Err(VerifyError::ProofTooLong);
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            if f_n & 1 == 0 {
                (f_n, s_n) = shift_right_until_odd_or_zero(f_n, s_n);
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    // Step 7.
    if s_n != 0 {
        return Err(VerifyError::ProofTooShort);
    }
    if f_r != *old_root {
        return Err(VerifyError::OldRootMismatch {
            computed: f_r,
            expected: *old_root,
        });
    }
    if s_r != *new_root {
        return Err(VerifyError::NewRootMismatch {
            computed: s_r,
            expected: *new_root,
        });
    }
    Ok(())
}

fn verify_trivial_consistency(
    old_size: u64,
    old_root: &Hash32,
    new_root: &Hash32,
    proof: &[Hash32],
) -> Result<(), VerifyError> {
    if !proof.is_empty() {
        return Err(VerifyError::ConsistencyProofNotEmpty);
    }
    if old_size == 0 {
        let empty_root = empty_tree_root();
        if *old_root != empty_root {
            return Err(VerifyError::OldRootMismatch {
                computed: empty_root,
                expected: *old_root,
            });
        }
        return Ok(());
    }
    if old_root != new_root {
        return Err(VerifyError::NewRootMismatch {
            computed: *old_root,
            expected: *new_root,
        });
    }
    Ok(())
}

/// RFC 9162's "right-shift both fn and sn equally until either LSB(fn) is set or fn is 0".
fn shift_right_until_odd_or_zero(mut f_n: u64, mut s_n: u64) -> (u64, u64) {
    while f_n & 1 == 0 && f_n != 0 {
        f_n >>= 1;
        s_n >>= 1;
    }
    (f_n, s_n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // -----------------------------------------------------------------------------------------
    // An independent, naive transcription of RFC 6962 §2.1: MTH, PATH, PROOF and SUBPROOF as
    // recursive functions over slices of leaf hashes. The production code shares only
    // `node_hash` with it.

    fn naive_split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn naive_mth(leaves: &[Hash32]) -> Hash32 {
        match leaves.len() {
            0 => Hash32::sha256(b""),
            1 => leaves[0],
            n => {
                let k = naive_split(n);
                node_hash(&naive_mth(&leaves[..k]), &naive_mth(&leaves[k..]))
            }
        }
    }

    fn naive_path(m: usize, leaves: &[Hash32]) -> Vec<Hash32> {
        let n = leaves.len();
        if n == 1 {
            return Vec::new();
        }
        let k = naive_split(n);
        if m < k {
            let mut path = naive_path(m, &leaves[..k]);
            path.push(naive_mth(&leaves[k..]));
            path
        } else {
            let mut path = naive_path(m - k, &leaves[k..]);
            path.push(naive_mth(&leaves[..k]));
            path
        }
    }

    fn naive_subproof(m: usize, leaves: &[Hash32], whole_old_tree: bool) -> Vec<Hash32> {
        let n = leaves.len();
        if m == n {
            return if whole_old_tree {
                Vec::new()
            } else {
                vec![naive_mth(leaves)]
            };
        }
        let k = naive_split(n);
        if m <= k {
            let mut proof = naive_subproof(m, &leaves[..k], whole_old_tree);
            proof.push(naive_mth(&leaves[k..]));
            proof
        } else {
            let mut proof = naive_subproof(m - k, &leaves[k..], false);
            proof.push(naive_mth(&leaves[..k]));
            proof
        }
    }

    fn naive_consistency_proof(m: usize, leaves: &[Hash32]) -> Vec<Hash32> {
        naive_subproof(m, leaves, true)
    }

    fn leaf_hashes_of_count(count: u64) -> Vec<Hash32> {
        (0..count)
            .map(|i| leaf_hash(&Hash32::sha256(&i.to_be_bytes())))
            .collect()
    }

    fn hash_from_hex(text: &str) -> Hash32 {
        Hash32::from_hex(text).expect("64 lowercase hex digits")
    }

    fn hashes_from_hex(texts: &[&str]) -> Vec<Hash32> {
        texts.iter().map(|text| hash_from_hex(text)).collect()
    }

    // -----------------------------------------------------------------------------------------
    // Published vectors: transparency-dev/merkle testonly/constants.go and proof/verify_test.go
    // (the RFC 6962 vectors also used by Certificate Transparency).

    const VECTOR_LEAF_DATA_HEX: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    /// Roots of the trees of sizes 0..=8 built from `VECTOR_LEAF_DATA_HEX`.
    const VECTOR_ROOTS_HEX: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Complete subtree roots of the 8-leaf tree, by level then index.
    const VECTOR_NODE_HASHES_HEX: [&[&str]; 4] = [
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ],
        &[
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ],
        &[
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
        &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
    ];

    /// (leaf index 0-based, tree size, proof). The Go file numbers leaves from 1.
    const VECTOR_INCLUSION_PROOFS: [(u64, u64, &[&str]); 5] = [
        (0, 1, &[]),
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
        (
            1,
            5,
            &[
                "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];

    /// (old size, new size, proof).
    const VECTOR_CONSISTENCY_PROOFS: [(u64, u64, &[&str]); 5] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
        (
            6,
            7,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
    ];

    fn vector_tree() -> InMemoryMerkleTree {
        let leaves = VECTOR_LEAF_DATA_HEX
            .iter()
            .map(|data| leaf_hash_of_data(&hex::decode(data).expect("hex")))
            .collect();
        InMemoryMerkleTree::from_leaf_hashes(leaves)
    }

    #[test]
    fn the_empty_tree_root_is_the_sha256_of_nothing() {
        assert_eq!(empty_tree_root(), hash_from_hex(VECTOR_ROOTS_HEX[0]));
        assert_eq!(MerkleFrontier::new().root(), empty_tree_root());
        assert_eq!(InMemoryMerkleTree::new().root(), empty_tree_root());
    }

    #[test]
    fn leaf_hash_of_an_event_hash_is_leaf_hash_of_its_32_bytes() {
        let event_hash = Hash32::sha256(b"event");
        let mut prefixed = vec![0u8];
        prefixed.extend_from_slice(&event_hash.0);
        assert_eq!(leaf_hash(&event_hash), Hash32::sha256(&prefixed));
        assert_eq!(leaf_hash(&event_hash), leaf_hash_of_data(&event_hash.0));
        assert_ne!(leaf_hash(&event_hash), event_hash);
    }

    #[test]
    fn published_roots_match_for_every_size_from_0_to_8() {
        let tree = vector_tree();
        let mut frontier = MerkleFrontier::new();
        for (size, root_hex) in VECTOR_ROOTS_HEX.iter().enumerate() {
            let size = size as u64;
            assert_eq!(
                tree.root_at_size(size),
                Ok(hash_from_hex(root_hex)),
                "size {size}"
            );
            assert_eq!(frontier.root(), hash_from_hex(root_hex), "size {size}");
            if size < 8 {
                let leaf = tree
                    .complete_subtree(SubtreeId::new(0, size).unwrap())
                    .unwrap();
                frontier.append_leaf_hash(leaf).unwrap();
            }
        }
    }

    #[test]
    fn published_complete_subtree_hashes_match() {
        let tree = vector_tree();
        for (level, hashes) in VECTOR_NODE_HASHES_HEX.iter().enumerate() {
            for (index, hash_hex) in hashes.iter().enumerate() {
                let id = SubtreeId::new(level as u32, index as u64).unwrap();
                assert_eq!(
                    tree.complete_subtree(id),
                    Ok(hash_from_hex(hash_hex)),
                    "{id:?}"
                );
            }
        }
    }

    #[test]
    fn frontier_hashes_match_the_published_compact_trees() {
        // transparency-dev CompactTrees(): per size, the complete subtree roots, largest first.
        let node = |level: usize, index: usize| hash_from_hex(VECTOR_NODE_HASHES_HEX[level][index]);
        let expected: [Vec<Hash32>; 9] = [
            vec![],
            vec![node(0, 0)],
            vec![node(1, 0)],
            vec![node(1, 0), node(0, 2)],
            vec![node(2, 0)],
            vec![node(2, 0), node(0, 4)],
            vec![node(2, 0), node(1, 2)],
            vec![node(2, 0), node(1, 2), node(0, 6)],
            vec![node(3, 0)],
        ];
        let mut frontier = MerkleFrontier::new();
        for (size, hashes) in expected.iter().enumerate() {
            assert_eq!(frontier.hashes(), hashes.as_slice(), "size {size}");
            if size < 8 {
                frontier.append_leaf_hash(node(0, size)).unwrap();
            }
        }
    }

    #[test]
    fn published_inclusion_proofs_are_generated_and_verify() {
        let tree = vector_tree();
        for (leaf_index, tree_size, proof_hex) in VECTOR_INCLUSION_PROOFS {
            let expected = hashes_from_hex(proof_hex);
            let proof = tree.inclusion_proof(leaf_index, tree_size).unwrap();
            assert_eq!(proof, expected, "leaf {leaf_index} size {tree_size}");
            let leaf = tree
                .complete_subtree(SubtreeId::new(0, leaf_index).unwrap())
                .unwrap();
            let root = hash_from_hex(VECTOR_ROOTS_HEX[tree_size as usize]);
            assert_eq!(
                verify_inclusion(leaf_index, tree_size, &leaf, &expected, &root),
                Ok(())
            );
        }
    }

    #[test]
    fn published_consistency_proofs_are_generated_and_verify() {
        let tree = vector_tree();
        for (old_size, new_size, proof_hex) in VECTOR_CONSISTENCY_PROOFS {
            let expected = hashes_from_hex(proof_hex);
            let proof = tree.consistency_proof(old_size, new_size).unwrap();
            assert_eq!(proof, expected, "{old_size} -> {new_size}");
            let old_root = hash_from_hex(VECTOR_ROOTS_HEX[old_size as usize]);
            let new_root = hash_from_hex(VECTOR_ROOTS_HEX[new_size as usize]);
            assert_eq!(
                verify_consistency(old_size, new_size, &old_root, &new_root, &expected),
                Ok(())
            );
        }
    }

    /// draft-ietf-plants-merkle-tree-certs, "Subtree Test Vectors", as reproduced by
    /// transparency-dev/merkle testonly/vectors_test.go (TestSubtreeHashVectors): leaves
    /// d[i] = [i] for i < 130; for every valid subtree [start, end) (start = 0, or start a
    /// multiple of the smallest power of two >= end - start) in order of end then start, the
    /// line "[start, end) <hex MTH>\n" goes into one running SHA-256.
    #[test]
    fn published_accumulated_subtree_hash_vector_matches() {
        let leaf_count = 130u64;
        let leaves = (0..leaf_count)
            .map(|i| leaf_hash_of_data(&[i as u8]))
            .collect();
        let tree = InMemoryMerkleTree::from_leaf_hashes(leaves);
        let mut running = Sha256::new();
        for end in 1..=leaf_count {
            for start in 0..end {
                let valid = start == 0 || start % (end - start).next_power_of_two() == 0;
                if !valid {
                    continue;
                }
                let hash = range_hash(LeafRange::new(start, end).unwrap(), &tree).unwrap();
                running.update(format!("[{start}, {end}) {hash}\n").as_bytes());
            }
        }
        assert_eq!(
            hex::encode(running.finalize()),
            "94a95384a8c69acea9b50d035a58285b3a777cb7a724005faa5e1f1e1190007f"
        );
    }

    // -----------------------------------------------------------------------------------------
    // Agreement with the naive definitions.

    #[test]
    fn frontier_root_equals_the_naive_mth_for_every_size_up_to_300() {
        let leaves = leaf_hashes_of_count(300);
        let mut frontier = MerkleFrontier::new();
        for size in 0..=300usize {
            assert_eq!(frontier.size(), size as u64);
            assert_eq!(frontier.root(), naive_mth(&leaves[..size]), "size {size}");
            if size < 300 {
                frontier.append_leaf_hash(leaves[size]).unwrap();
            }
        }
    }

    #[test]
    fn every_proof_equals_the_naive_rfc_6962_proof_for_sizes_up_to_70() {
        let leaves = leaf_hashes_of_count(70);
        let tree = InMemoryMerkleTree::from_leaf_hashes(leaves.clone());
        for size in 1..=70usize {
            assert_eq!(
                tree.root_at_size(size as u64),
                Ok(naive_mth(&leaves[..size]))
            );
            for index in 0..size {
                let proof = tree.inclusion_proof(index as u64, size as u64).unwrap();
                assert_eq!(
                    proof,
                    naive_path(index, &leaves[..size]),
                    "leaf {index} size {size}"
                );
            }
            for old_size in 1..=size {
                let proof = tree
                    .consistency_proof(old_size as u64, size as u64)
                    .unwrap();
                let naive = naive_consistency_proof(old_size, &leaves[..size]);
                assert_eq!(proof, naive, "{old_size} -> {size}");
            }
        }
    }

    #[test]
    fn appending_one_leaf_at_a_time_builds_the_same_in_memory_tree() {
        let leaves = leaf_hashes_of_count(1000);
        let mut appended = InMemoryMerkleTree::new();
        for leaf in &leaves {
            appended.append_leaf_hash(*leaf).unwrap();
        }
        assert_eq!(appended, InMemoryMerkleTree::from_leaf_hashes(leaves));
    }

    // -----------------------------------------------------------------------------------------
    // Frontier persistence and the stored-level scheme.

    #[test]
    fn a_restored_frontier_continues_exactly_like_the_original() {
        let leaves = leaf_hashes_of_count(700);
        let mut original = MerkleFrontier::new();
        for (i, leaf) in leaves.iter().enumerate() {
            let saved_size = original.size();
            let saved_hashes = original.hashes().to_vec();
            let restored = MerkleFrontier::from_parts(saved_size, saved_hashes).unwrap();
            assert_eq!(restored, original);
            assert_eq!(restored.root(), original.root());
            original.append_leaf_hash(*leaf).unwrap();
            let mut continued = restored;
            continued.append_leaf_hash(*leaf).unwrap();
            assert_eq!(continued, original, "after leaf {i}");
        }
    }

    #[test]
    fn restoring_a_frontier_with_the_wrong_hash_count_is_refused() {
        let hash = Hash32::sha256(b"x");
        assert!(MerkleFrontier::from_parts(0, vec![]).is_ok());
        assert!(MerkleFrontier::from_parts(5, vec![hash, hash]).is_ok());
        assert_eq!(
            MerkleFrontier::from_parts(5, vec![hash]),
            Err(MerkleError::FrontierHashCountMismatch {
                size: 5,
                expected: 2,
                actual: 1
            })
        );
        assert!(MerkleFrontier::from_parts(0, vec![hash]).is_err());
        assert!(MerkleFrontier::from_parts(8, vec![hash, hash]).is_err());
        assert!(MerkleFrontier::from_parts(u64::MAX, vec![hash; 64]).is_err());
        let full = MerkleFrontier::from_parts(MAX_TREE_SIZE, vec![hash]).unwrap();
        assert!(full.clone().append_leaf_hash(hash).is_err());
    }

    #[test]
    fn frontier_subtree_ids_name_its_hashes() {
        let leaves = leaf_hashes_of_count(300);
        let tree = InMemoryMerkleTree::from_leaf_hashes(leaves.clone());
        let mut frontier = MerkleFrontier::new();
        for leaf in leaves {
            frontier.append_leaf_hash(leaf).unwrap();
            let from_tree: Vec<Hash32> = frontier
                .subtree_ids()
                .into_iter()
                .map(|id| tree.complete_subtree(id).unwrap())
                .collect();
            assert_eq!(from_tree, frontier.hashes());
        }
    }

    #[test]
    fn the_frontier_reports_every_complete_subtree_once_with_its_root() {
        let leaves = leaf_hashes_of_count(1030);
        let tree = InMemoryMerkleTree::from_leaf_hashes(leaves.clone());
        let mut frontier = MerkleFrontier::new();
        let mut reported = Vec::new();
        for leaf in leaves {
            frontier
                .append_leaf_hash_reporting_subtrees(leaf, |id, hash| reported.push((id, hash)))
                .unwrap();
        }
        // A tree of n leaves has sum over levels of floor(n / 2^level) complete subtrees.
        let expected_count: u64 = (0..64).map(|level| 1030u64 >> level).sum();
        assert_eq!(reported.len() as u64, expected_count);
        for (id, hash) in reported {
            assert_eq!(tree.complete_subtree(id), Ok(hash), "{id:?}");
        }
    }

    /// A fake storage layer that keeps only what the service will keep: leaf hashes and the
    /// subtree roots at levels 8 and 16, collected from the frontier as leaves are appended.
    struct StridedStore {
        leaf_hashes: Vec<Hash32>,
        stored_nodes: BTreeMap<(u32, u64), Hash32>,
    }

    impl StridedStore {
        fn build(leaf_count: u64) -> StridedStore {
            let leaf_hashes = leaf_hashes_of_count(leaf_count);
            let mut stored_nodes = BTreeMap::new();
            let mut frontier = MerkleFrontier::new();
            for leaf in &leaf_hashes {
                frontier
                    .append_leaf_hash_reporting_subtrees(*leaf, |id, hash| {
                        if id.is_stored_level() {
                            stored_nodes.insert((id.level(), id.index()), hash);
                        }
                    })
                    .unwrap();
            }
            StridedStore {
                leaf_hashes,
                stored_nodes,
            }
        }

        fn children(&self, id: SubtreeId) -> Vec<Hash32> {
            match stored_children(id) {
                StoredChildren::LeafHashes { first_leaf, count } => {
                    self.leaf_hashes[first_leaf as usize..(first_leaf + count) as usize].to_vec()
                }
                StoredChildren::StoredNodes {
                    level,
                    first_index,
                    count,
                } => (first_index..first_index + count)
                    .map(|index| self.stored_nodes[&(level, index)])
                    .collect(),
            }
        }
    }

    impl SubtreeHashes for StridedStore {
        type Error = MerkleError;

        fn complete_subtree(&self, id: SubtreeId) -> Result<Hash32, MerkleError> {
            subtree_from_children(id, &self.children(id))
        }
    }

    #[test]
    fn a_store_of_leaves_and_every_eighth_level_serves_the_same_proofs() {
        let leaf_count = 65_536 * 2 + 300;
        let store = StridedStore::build(leaf_count);
        assert_eq!(
            store.stored_nodes.len() as u64,
            leaf_count / 256 + leaf_count / 65_536
        );
        let tree = InMemoryMerkleTree::from_leaf_hashes(store.leaf_hashes.clone());
        for (leaf_index, tree_size) in [
            (0, leaf_count),
            (65_535, 65_536),
            (70_000, 131_000),
            (131_071, leaf_count),
        ] {
            assert_eq!(
                inclusion_proof(leaf_index, tree_size, &store),
                tree.inclusion_proof(leaf_index, tree_size)
            );
        }
        for (old_size, new_size) in [
            (1, leaf_count),
            (256, 65_536),
            (65_537, leaf_count),
            (1000, 131_072),
        ] {
            assert_eq!(
                consistency_proof(old_size, new_size, &store),
                tree.consistency_proof(old_size, new_size)
            );
        }
        assert_eq!(tree_root(leaf_count, &store), Ok(tree.root()));
    }

    #[test]
    fn the_plan_then_fetch_flow_gives_the_same_proof_as_the_direct_one() {
        let store = StridedStore::build(5000);
        let ranges = inclusion_proof_ranges(1234, 4999).unwrap();
        let mut fetched = BTreeMap::new();
        for id in subtrees_needed(&ranges) {
            fetched.insert(id, subtree_from_children(id, &store.children(id)).unwrap());
        }
        assert_eq!(
            proof_from_ranges(&ranges, &fetched),
            inclusion_proof(1234, 4999, &store)
        );
        fetched.pop_first();
        assert!(matches!(
            proof_from_ranges(&ranges, &fetched),
            Err(MerkleError::SubtreeNotAvailable { .. })
        ));
    }

    #[test]
    fn stored_children_never_exceed_128_hashes_and_a_wrong_count_is_an_error() {
        for level in 0..=40u32 {
            let id = SubtreeId::new(level, 3).unwrap();
            let count = match stored_children(id) {
                StoredChildren::LeafHashes { first_leaf, count } => {
                    assert_eq!(first_leaf, id.first_leaf());
                    count
                }
                StoredChildren::StoredNodes {
                    level: stored,
                    first_index,
                    count,
                } => {
                    assert!(stored > 0 && stored % STORED_LEVEL_STRIDE == 0 && stored <= level);
                    assert_eq!(first_index << stored, id.first_leaf());
                    count
                }
            };
            assert!((1..=128).contains(&count));
            assert_eq!(count, 1 << (level % STORED_LEVEL_STRIDE));
        }
        let id = SubtreeId::new(3, 0).unwrap();
        assert!(matches!(
            subtree_from_children(id, &[Hash32::ZERO; 7]),
            Err(MerkleError::ChildHashCountMismatch {
                expected: 8,
                actual: 7,
                ..
            })
        ));
        assert!(subtree_from_children(id, &[]).is_err());
    }

    // -----------------------------------------------------------------------------------------
    // Bad input: errors, never panics.

    #[test]
    fn proof_generation_refuses_impossible_requests() {
        let tree = InMemoryMerkleTree::from_leaf_hashes(leaf_hashes_of_count(10));
        assert_eq!(
            inclusion_proof(10, 10, &tree),
            Err(MerkleError::LeafIndexOutOfRange {
                leaf_index: 10,
                tree_size: 10
            })
        );
        assert!(inclusion_proof(0, 0, &tree).is_err());
        assert!(inclusion_proof(0, 11, &tree).is_err());
        assert!(inclusion_proof(0, u64::MAX, &tree).is_err());
        assert!(inclusion_proof(u64::MAX, u64::MAX, &tree).is_err());
        assert_eq!(
            consistency_proof(5, 4, &tree),
            Err(MerkleError::OldSizeAboveNewSize {
                old_size: 5,
                new_size: 4
            })
        );
        assert!(consistency_proof(1, 11, &tree).is_err());
        assert!(consistency_proof(1, u64::MAX, &tree).is_err());
        assert_eq!(consistency_proof(0, 10, &tree), Ok(vec![]));
        assert_eq!(consistency_proof(7, 7, &tree), Ok(vec![]));
        assert!(tree_root(u64::MAX, &tree).is_err());
    }

    #[test]
    fn only_node_shaped_ranges_and_in_bounds_subtrees_can_be_named() {
        assert!(LeafRange::new(0, 7).is_ok());
        assert!(LeafRange::new(4, 7).is_ok());
        assert!(LeafRange::new(6, 7).is_ok());
        assert!(LeafRange::new(2, 5).is_ok());
        assert!(LeafRange::new(3, 5).is_err());
        assert!(LeafRange::new(5, 5).is_err());
        assert!(LeafRange::new(6, 5).is_err());
        assert!(LeafRange::new(0, MAX_TREE_SIZE).is_ok());
        assert!(LeafRange::new(0, MAX_TREE_SIZE + 1).is_err());
        assert!(SubtreeId::new(63, 0).is_some());
        assert!(SubtreeId::new(63, 1).is_none());
        assert!(SubtreeId::new(64, 0).is_none());
        assert!(SubtreeId::new(0, MAX_TREE_SIZE - 1).is_some());
        assert!(SubtreeId::new(0, MAX_TREE_SIZE).is_none());
    }

    #[test]
    fn inclusion_verification_rejects_impossible_sizes_without_panicking() {
        let hash = Hash32::sha256(b"leaf");
        let some_proof = vec![hash; 3];
        for (index, size) in [(0, 0), (1, 0), (2, 1), (u64::MAX, u64::MAX), (5, 5)] {
            assert_eq!(
                verify_inclusion(index, size, &hash, &[], &hash),
                Err(VerifyError::LeafIndexOutOfRange {
                    leaf_index: index,
                    tree_size: size
                })
            );
        }
        assert_eq!(verify_inclusion(0, 1, &hash, &[], &hash), Ok(()));
        assert_eq!(
            verify_inclusion(0, 1, &hash, &some_proof, &hash),
            Err(VerifyError::ProofTooLong)
        );
        assert_eq!(
            verify_inclusion(0, 2, &hash, &[], &hash),
            Err(VerifyError::ProofTooShort)
        );
        assert_eq!(
            verify_inclusion(u64::MAX - 1, u64::MAX, &hash, &some_proof, &hash),
            Err(VerifyError::ProofTooShort)
        );
        assert!(verify_inclusion(0, u64::MAX, &hash, &vec![hash; 100], &hash).is_err());
    }

    #[test]
    fn consistency_verification_handles_the_edge_sizes() {
        let a = Hash32::sha256(b"a");
        let b = Hash32::sha256(b"b");
        let empty = empty_tree_root();
        assert_eq!(verify_consistency(0, 0, &empty, &empty, &[]), Ok(()));
        assert_eq!(verify_consistency(0, 5, &empty, &b, &[]), Ok(()));
        assert!(matches!(
            verify_consistency(0, 5, &a, &b, &[]),
            Err(VerifyError::OldRootMismatch { .. })
        ));
        assert_eq!(
            verify_consistency(0, 5, &empty, &b, &[a]),
            Err(VerifyError::ConsistencyProofNotEmpty)
        );
        assert_eq!(verify_consistency(3, 3, &a, &a, &[]), Ok(()));
        assert!(matches!(
            verify_consistency(3, 3, &a, &b, &[]),
            Err(VerifyError::NewRootMismatch { .. })
        ));
        assert_eq!(
            verify_consistency(3, 3, &a, &a, &[a]),
            Err(VerifyError::ConsistencyProofNotEmpty)
        );
        assert_eq!(
            verify_consistency(4, 3, &a, &b, &[a]),
            Err(VerifyError::OldSizeAboveNewSize {
                old_size: 4,
                new_size: 3
            })
        );
        assert_eq!(
            verify_consistency(1, 2, &a, &b, &[]),
            Err(VerifyError::ConsistencyProofEmpty)
        );
        assert!(verify_consistency(1, u64::MAX, &a, &b, &[a; 3]).is_err());
        assert!(verify_consistency(u64::MAX - 1, u64::MAX, &a, &b, &[a; 70]).is_err());
    }

    // -----------------------------------------------------------------------------------------
    // Properties over random trees.

    fn flip_bit(hash: &Hash32, bit: usize) -> Hash32 {
        let mut flipped = *hash;
        flipped.0[bit / 8] ^= 1 << (bit % 8);
        flipped
    }

    fn assert_inclusion_fails(
        index: u64,
        size: u64,
        leaf: &Hash32,
        proof: &[Hash32],
        root: &Hash32,
        what: &str,
    ) {
        assert!(
            verify_inclusion(index, size, leaf, proof, root).is_err(),
            "{what}: leaf {index} size {size} still verifies"
        );
    }

    fn check_inclusion_tampering(tree: &InMemoryMerkleTree, index: u64, size: u64, bit: usize) {
        let root = tree.root_at_size(size).unwrap();
        let leaf = tree
            .complete_subtree(SubtreeId::new(0, index).unwrap())
            .unwrap();
        let proof = tree.inclusion_proof(index, size).unwrap();
        assert_eq!(verify_inclusion(index, size, &leaf, &proof, &root), Ok(()));
        for position in 0..proof.len() {
            let mut tampered = proof.clone();
            tampered[position] = flip_bit(&tampered[position], bit);
            assert_inclusion_fails(index, size, &leaf, &tampered, &root, "flipped bit");
        }
        if !proof.is_empty() {
            assert_inclusion_fails(index, size, &leaf, &proof[1..], &root, "dropped first");
            assert_inclusion_fails(
                index,
                size,
                &leaf,
                &proof[..proof.len() - 1],
                &root,
                "dropped last",
            );
        }
        let mut longer = proof.clone();
        longer.push(root);
        assert_inclusion_fails(index, size, &leaf, &longer, &root, "appended hash");
        let mut longer = vec![leaf];
        longer.extend_from_slice(&proof);
        assert_inclusion_fails(index, size, &leaf, &longer, &root, "prepended hash");
        assert_inclusion_fails(
            index,
            size,
            &flip_bit(&leaf, bit),
            &proof,
            &root,
            "other leaf",
        );
        assert_inclusion_fails(
            index,
            size,
            &leaf,
            &proof,
            &flip_bit(&root, bit),
            "other root",
        );
        for other_index in [index.wrapping_sub(1), index + 1, index ^ 2] {
            if other_index != index {
                assert_inclusion_fails(other_index, size, &leaf, &proof, &root, "other index");
            }
        }
        // A proof for size n can also fit size n + 1 or n - 1 when the path shape is the same;
        // the signed checkpoint binds size and root together, so that is harmless. Doubling or
        // halving the size always changes the path length.
        assert_inclusion_fails(index, size * 2, &leaf, &proof, &root, "doubled size");
        assert_inclusion_fails(index, size / 2, &leaf, &proof, &root, "halved size");
    }

    fn assert_consistency_fails(
        old: u64,
        new: u64,
        old_root: &Hash32,
        new_root: &Hash32,
        proof: &[Hash32],
        what: &str,
    ) {
        assert!(
            verify_consistency(old, new, old_root, new_root, proof).is_err(),
            "{what}: {old} -> {new} still verifies"
        );
    }

    fn check_consistency_tampering(tree: &InMemoryMerkleTree, old: u64, new: u64, bit: usize) {
        let old_root = tree.root_at_size(old).unwrap();
        let new_root = tree.root_at_size(new).unwrap();
        let proof = tree.consistency_proof(old, new).unwrap();
        assert_eq!(
            verify_consistency(old, new, &old_root, &new_root, &proof),
            Ok(())
        );
        if old == new {
            assert!(proof.is_empty());
            return;
        }
        assert!(!proof.is_empty());
        for position in 0..proof.len() {
            let mut tampered = proof.clone();
            tampered[position] = flip_bit(&tampered[position], bit);
            assert_consistency_fails(old, new, &old_root, &new_root, &tampered, "flipped bit");
        }
        assert_consistency_fails(old, new, &old_root, &new_root, &proof[1..], "dropped first");
        assert_consistency_fails(
            old,
            new,
            &old_root,
            &new_root,
            &proof[..proof.len() - 1],
            "dropped last",
        );
        for extra in [old_root, new_root, proof[0]] {
            let mut longer = proof.clone();
            longer.push(extra);
            assert_consistency_fails(old, new, &old_root, &new_root, &longer, "appended hash");
            let mut longer = vec![extra];
            longer.extend_from_slice(&proof);
            assert_consistency_fails(old, new, &old_root, &new_root, &longer, "prepended hash");
        }
        assert_consistency_fails(
            old,
            new,
            &flip_bit(&old_root, bit),
            &new_root,
            &proof,
            "other old root",
        );
        assert_consistency_fails(
            old,
            new,
            &old_root,
            &flip_bit(&new_root, bit),
            &proof,
            "other new root",
        );
        assert_consistency_fails(old, new, &new_root, &old_root, &proof, "swapped roots");
        for other_old in [old - 1, old + 1, old ^ 2] {
            if other_old != old {
                assert_consistency_fails(
                    other_old,
                    new,
                    &old_root,
                    &new_root,
                    &proof,
                    "other old size",
                );
            }
        }
        assert_consistency_fails(
            old,
            new * 2,
            &old_root,
            &new_root,
            &proof,
            "doubled new size",
        );
        assert_consistency_fails(
            old,
            new / 2,
            &old_root,
            &new_root,
            &proof,
            "halved new size",
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn every_inclusion_proof_verifies_against_the_frontier_root(size in 1u64..2000) {
            let leaves = leaf_hashes_of_count(size);
            let tree = InMemoryMerkleTree::from_leaf_hashes(leaves.clone());
            let mut frontier = MerkleFrontier::new();
            for leaf in &leaves {
                frontier.append_leaf_hash(*leaf).unwrap();
            }
            let root = frontier.root();
            prop_assert_eq!(tree.root(), root);
            for (index, leaf) in leaves.iter().enumerate() {
                let proof = inclusion_proof(index as u64, size, &tree).unwrap();
                prop_assert_eq!(verify_inclusion(index as u64, size, leaf, &proof, &root), Ok(()));
            }
        }

        #[test]
        fn consistency_proofs_between_random_sizes_verify(
            new_size in 1u64..2000,
            old_fraction in 0.0f64..=1.0
        ) {
            let old_size = ((new_size as f64) * old_fraction) as u64;
            let tree = InMemoryMerkleTree::from_leaf_hashes(leaf_hashes_of_count(new_size));
            let proof = consistency_proof(old_size, new_size, &tree).unwrap();
            let old_root = tree.root_at_size(old_size).unwrap();
            prop_assert_eq!(
                verify_consistency(old_size, new_size, &old_root, &tree.root(), &proof),
                Ok(())
            );
        }

        #[test]
        fn any_tampering_with_an_inclusion_proof_fails(
            size in 1u64..2000, index_fraction in 0.0f64..1.0, bit in 0usize..256,
        ) {
            let index = ((size as f64) * index_fraction) as u64;
            let tree = InMemoryMerkleTree::from_leaf_hashes(leaf_hashes_of_count(size));
            check_inclusion_tampering(&tree, index, size, bit);
        }

        #[test]
        fn any_tampering_with_a_consistency_proof_fails(
            new_size in 1u64..2000, old_fraction in 0.0f64..=1.0, bit in 0usize..256,
        ) {
            let old_size = (((new_size as f64) * old_fraction) as u64).max(1);
            let tree = InMemoryMerkleTree::from_leaf_hashes(leaf_hashes_of_count(new_size));
            check_consistency_tampering(&tree, old_size, new_size, bit);
        }

        #[test]
        fn verification_never_panics_on_arbitrary_input(
            index in any::<u64>(), size in any::<u64>(), other_size in any::<u64>(),
            proof_length in 0usize..80, seed in any::<u64>(),
        ) {
            let proof: Vec<Hash32> = (0..proof_length as u64)
                .map(|i| Hash32::sha256(&(seed ^ i).to_be_bytes()))
                .collect();
            let hash = Hash32::sha256(&seed.to_le_bytes());
            let _ = verify_inclusion(index, size, &hash, &proof, &hash);
            let _ = verify_consistency(size, other_size, &hash, &hash, &proof);
            let _ = verify_consistency(
                size.min(other_size),
                size.max(other_size),
                &hash,
                &hash,
                &proof
            );
            let _ = inclusion_proof_ranges(index, size);
            let _ = consistency_proof_ranges(size.min(other_size), size.max(other_size));
        }
    }

    #[test]
    fn tampering_fails_exhaustively_for_small_trees() {
        let tree = InMemoryMerkleTree::from_leaf_hashes(leaf_hashes_of_count(40));
        for size in 1..=40 {
            for index in 0..size {
                check_inclusion_tampering(&tree, index, size, (index as usize * 7) % 256);
            }
            for old in 1..=size {
                check_consistency_tampering(&tree, old, size, (old as usize * 13) % 256);
            }
        }
    }
}
