//! Verification of a signed export (docs/AUDIT_FORMAT.md §6). Placeholder until it lands.
