//! The minimum Rust the README states is the real one: `rust-version` in Cargo.toml equals the
//! highest `rust-version` among the locked dependencies built on Linux (none needs more, and
//! the project claims no more than they need), and the README says the same number.

use std::process::Command;

/// `1.92` and `1.92.0` alike: major, minor, patch.
fn version_key(version: &str) -> [u64; 3] {
    let mut key = [0; 3];
    for (slot, part) in key.iter_mut().zip(version.split('.')) {
        *slot = part.parse().expect("a numeric version part");
    }
    key
}

#[test]
fn the_stated_minimum_rust_is_what_the_locked_dependencies_need() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
            "x86_64-unknown-linux-gnu",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let ours = packages
        .iter()
        .find(|package| package["name"] == "ledger")
        .and_then(|package| package["rust_version"].as_str())
        .expect("Cargo.toml declares rust-version");
    let (needed, by) = packages
        .iter()
        .filter(|package| package["name"] != "ledger")
        .filter_map(|package| {
            let version = package["rust_version"].as_str()?;
            Some((version_key(version), package["name"].as_str()?.to_owned()))
        })
        .max()
        .expect("dependencies declare rust-version");
    assert_eq!(
        version_key(ours),
        needed,
        "Cargo.toml says {ours}; the dependencies need {needed:?} ({by})"
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    assert!(
        readme.contains(&format!("Rust ({ours} or newer")),
        "README.md states the minimum Rust as {ours}"
    );
}
