//! Integration tests: the service over HTTP on a fresh database each.

mod helpers;

mod accounts;
mod audit;
mod authorization;
mod concurrency;
mod database;
mod idempotency;
mod journal;
mod ledgers;
mod lifecycle;
mod limits;
mod matching;
mod operations;
mod plans;
mod reconciliation;
mod scaling;
mod scheduled_integrity;
mod tamper;
mod trace_context;
mod transfers;
mod verify_limits;
mod witness;
mod writer_metrics;
