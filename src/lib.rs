//! An audited double-entry ledger service.
//!
//! Functional core (`domain`, `audit`: pure, deterministic) and imperative shell (`storage`,
//! `writer`, `http`, `embedded`). See docs/ARCHITECTURE.md.

pub mod audit;
pub mod domain;
