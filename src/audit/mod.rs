//! The pure audit core: canonical encoding, the hash chain and replay (§5).
//!
//! No I/O, no clock, no randomness: the server and `ledger-verify` run this same code.

pub mod chain;
pub mod checkpoint;
pub mod codec;
pub mod cosignature;
pub mod export;
pub mod hash;
pub mod jcs;
pub mod merkle;
pub mod reconciliation;
pub mod replay;
pub mod time;
pub mod verify;

pub use chain::{ChainHead, JournalEvent, Provenance};
pub use hash::Hash32;
