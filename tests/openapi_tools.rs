//! The committed OpenAPI document (`openapi/openapi.json`, which `tests/api` checks is the one
//! the service serves) passes the linters a team would run on it: openapi-spec-validator with no
//! error, and `redocly lint` (recommended rules, `openapi/redocly.yaml`) with no error and no
//! warning beyond those justified in `openapi/.redocly.lint-ignore.yaml`.
//!
//! Both tools must be installed (CI installs them in `.ci/run`); a missing tool fails the test
//! with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn document() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/openapi.json")
}

/// Runs a tool, or fails saying how to install it.
fn run(tool: &str, args: &[&std::ffi::OsStr], install: &str) -> Output {
    Command::new(tool)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // redocly: no usage report, no update check (CI has no reason to call home).
        .env("REDOCLY_TELEMETRY", "off")
        .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "`{tool}` could not be run ({error}): install it with `{install}` (.ci/run does)"
            )
        })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_openapi_document_passes_openapi_spec_validator_with_no_error() {
    let document = document();
    let output = run(
        "openapi-spec-validator",
        &[
            "--validation-errors".as_ref(),
            "all".as_ref(),
            document.as_os_str(),
        ],
        "python3 -m pip install openapi-spec-validator",
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success() && stdout.trim_end().ends_with(": OK"),
        "openapi-spec-validator refuses openapi/openapi.json:\n{stdout}\n{stderr}"
    );
}

#[test]
fn the_openapi_document_passes_redocly_lint_with_no_error_and_no_unjustified_warning() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = root.join("openapi/redocly.yaml");
    let document = document();
    let output = run(
        "redocly",
        &[
            "lint".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--format=json".as_ref(),
            document.as_os_str(),
        ],
        "npm install -g @redocly/cli@2",
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!("redocly lint did not print its JSON report ({error}):\n{stdout}\n{stderr}")
    });
    let totals = &report["totals"];
    let problems: Vec<String> = report["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|problem| {
            format!(
                "{} {}: {} at {}",
                problem["severity"].as_str().unwrap_or("?"),
                problem["ruleId"].as_str().unwrap_or("?"),
                problem["message"].as_str().unwrap_or("?"),
                problem["location"][0]["pointer"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert!(
        output.status.success() && totals["errors"] == 0 && totals["warnings"] == 0,
        "redocly lint finds problems in openapi/openapi.json ({totals}): fix them, or justify a \
         warning in openapi/.redocly.lint-ignore.yaml\n  {}\n{stderr}",
        problems.join("\n  ")
    );
}
