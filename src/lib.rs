//! An audited double-entry ledger service.
//!
//! Functional core (`domain`, `audit`: pure, deterministic) and imperative shell (`storage`,
//! `writer`, `http`, `embedded`). See docs/ARCHITECTURE.md.

pub mod audit;
pub mod audit_service;
pub mod config;
pub mod domain;
pub mod embedded;
pub mod http;
pub mod signing;
pub mod startup;
pub mod statement;
pub mod storage;
pub mod telemetry;
pub mod witness;
pub mod writer;
