//! Clients generated from the committed OpenAPI document work against the live service: a
//! Python one (openapi-python-client) and a TypeScript one (openapi-typescript + openapi-fetch,
//! compiled with `tsc --strict`) each drive the README's scenario (`tests/clients/run.sh`):
//! a ledger, accounts, a transfer with an Idempotency-Key, its replay, the key reused with
//! another body, balances, entries, pending then posted (with and without a body), a reversal,
//! and refusals read as `Problem` with their extension members.
//!
//! The generators must be installed (CI installs them in `.ci/run`): a missing one fails the
//! test with the command that installs it. The npm packages are pinned by
//! `tests/clients/package-lock.json` and installed outside the repository.

use std::process::Command;

fn drive_the_scenario_with(language: &str) {
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/run.sh"))
        .arg(language)
        .arg(env!("CARGO_BIN_EXE_ledger"))
        .output()
        .expect("run tests/clients/run.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the {language} client failed the scenario:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("the README's scenario passed"),
        "{stdout}\n{stderr}"
    );
}

#[test]
fn a_generated_python_client_drives_the_readme_scenario_against_the_live_service() {
    drive_the_scenario_with("python");
}

#[test]
fn a_generated_typescript_client_drives_the_readme_scenario_against_the_live_service() {
    drive_the_scenario_with("typescript");
}
