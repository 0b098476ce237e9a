//! Integration tests: the service over HTTP on a fresh database each.

mod helpers;

mod accounts;
mod concurrency;
mod database;
mod idempotency;
mod journal;
mod ledgers;
mod lifecycle;
mod operations;
mod transfers;
