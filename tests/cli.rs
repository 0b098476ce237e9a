//! The real `ledger` binary in dev mode (the embedded cluster under a throwaway data folder):
//! what it writes to stdout, to stderr and to the data folder. Logs are JSON lines on stderr,
//! stdout carries only a command's result, and no token the run creates appears in any log.
//! `ledger health` (the image's HEALTHCHECK) exits 0 while the service is ready, 1 after.
//! With `LEDGER_OTLP_ENDPOINT` set, spans reach the collector, joined to the client's trace.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// `ledger` with no setting of the caller's environment, the data folder given.
fn ledger(data_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("LEDGER_") || name.starts_with("DATABASE_URL") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .env("LEDGER_DATA_DIR", data_dir)
        .env("RUST_LOG", "debug");
    command
}

/// One HTTP/1.1 request on a fresh connection: the status and the body.
fn http(port: u16, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the service");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("a read timeout");
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Idempotency-Key: {}\r\nContent-Length: {}\r\n\r\n{body}",
        uuid::Uuid::new_v4(),
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let (head, content) = response.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "this client reads plain bodies only: {head}"
    );
    let json = serde_json::from_str(content).unwrap_or(Value::Null);
    (status, json)
}

/// A running `ledger serve`: its stderr lines as they come, its stdout once it ends.
struct Service {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<Vec<String>>,
    stdout: std::thread::JoinHandle<String>,
}

impl Service {
    fn start(data_dir: &Path) -> Service {
        Service::start_with(data_dir, &[])
    }

    fn start_with(data_dir: &Path, environment: &[(&str, &str)]) -> Service {
        let mut command = ledger(data_dir);
        command.envs(environment.iter().copied());
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ledger serve");
        let (send, lines) = mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let line = line.expect("a line of stderr");
                let _ = send.send(line.clone());
                all.push(line);
            }
            all
        });
        let mut out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            out.read_to_string(&mut text).expect("stdout");
            text
        });
        Service {
            child,
            lines,
            stderr,
            stdout,
        }
    }

    /// Waits for the log line announcing the port, and returns the port.
    fn port(&self) -> u16 {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(120))
                .expect("ledger serve logs `serving` before it exits");
            let Ok(record) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if record["fields"]["message"] == "serving" {
                return record["fields"]["port"].as_u64().expect("a port") as u16;
            }
        }
    }

    /// SIGTERM, then everything it wrote: (stdout, stderr lines).
    fn stop(mut self) -> (String, Vec<String>) {
        let pid = i32::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = self.child.wait().expect("wait for ledger serve");
        let stderr = self.stderr.join().expect("the stderr reader");
        let stdout = self.stdout.join().expect("the stdout reader");
        assert!(
            status.success(),
            "ledger serve exited {status}:\n{stderr:#?}"
        );
        (stdout, stderr)
    }
}

#[test]
fn the_first_key_goes_to_a_private_file_logs_go_to_stderr_and_no_token_reaches_a_log() {
    let root = tempfile::Builder::new()
        .prefix("ledger-cli-")
        .tempdir()
        .expect("a temporary folder");
    // The embedded cluster runs as the postgres user when the tests run as root.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let data_dir = root.path().join("data");

    let service = Service::start(&data_dir);
    let port = service.port();

    let key_file = data_dir.join("admin-key");
    let mode = std::fs::metadata(&key_file)
        .expect("the first admin key's file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{} is private", key_file.display());
    let admin = std::fs::read_to_string(&key_file).expect("read the admin key");
    assert!(admin.ends_with('\n'), "one line");
    let admin = admin.trim_end().to_owned();

    let (status, body) = http(
        port,
        "POST",
        "/v1/api-keys",
        &admin,
        Some(r#"{"name": "payments", "role": "writer"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let writer = body["token"].as_str().expect("a token").to_owned();
    let (status, body) = http(
        port,
        "POST",
        "/v1/ledgers",
        &admin,
        Some(r#"{"name": "main"}"#),
    );
    assert_eq!(status, 201, "{body}");
    let (status, _) = http(port, "GET", "/v1/ledgers/main", &writer, None);
    assert_eq!(status, 200);

    // A CLI command on the same folder while the service owns the cluster: stdout is the token.
    let created = ledger(&data_dir)
        .args([
            "keys",
            "create",
            "--role",
            "admin",
            "--name",
            "second admin",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ledger keys create");
    let cli_stdout = String::from_utf8(created.stdout).expect("UTF-8");
    let cli_stderr = String::from_utf8(created.stderr).expect("UTF-8");
    assert!(created.status.success(), "{cli_stderr}");
    assert_eq!(
        cli_stdout.lines().count(),
        1,
        "stdout holds the token alone: {cli_stdout:?}"
    );
    let second = cli_stdout.trim_end().to_owned();
    assert!(!second.is_empty() && !second.contains(char::is_whitespace));
    let (status, _) = http(port, "GET", "/v1/api-keys", &second, None);
    assert_eq!(status, 200, "the printed token is a working admin key");

    let ready = format!("http://127.0.0.1:{port}/health/ready");
    let health = |url: &str| {
        ledger(&data_dir)
            .args(["health", "--url", url])
            .output()
            .expect("run ledger health")
    };
    let answer = health(&ready);
    assert!(answer.status.success(), "ledger health: {answer:?}");
    assert!(answer.stdout.is_empty());

    let (stdout, stderr) = service.stop();
    assert_eq!(
        health(&ready).status.code(),
        Some(1),
        "nothing listens any more"
    );
    assert_eq!(
        stdout, "",
        "stdout is not a terminal: nothing is printed on it"
    );
    for line in &stderr {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|_| panic!("every log line is JSON: {line}"));
    }
    assert!(
        stderr
            .iter()
            .any(|line| line.contains("created the first admin API key")
                && line.contains(&*key_file.to_string_lossy())),
        "the key file's path is logged:\n{stderr:#?}"
    );
    let logs = [stdout, stderr.join("\n"), cli_stderr];
    for (what, token) in [("admin", &admin), ("writer", &writer), ("CLI", &second)] {
        for log in &logs {
            assert!(
                !log.contains(token.as_str()),
                "the {what} token is in a log:\n{log}"
            );
        }
    }

    // A second start keeps the first key: the file is written once.
    let service = Service::start(&data_dir);
    let port = service.port();
    let (status, _) = http(port, "GET", "/v1/api-keys", &admin, None);
    assert_eq!(status, 200);
    let (_, stderr) = service.stop();
    assert_eq!(
        std::fs::read_to_string(&key_file)
            .expect("the key file")
            .trim_end(),
        admin
    );
    assert!(!stderr.join("\n").contains(&admin));
}

/// A collector stand-in: accepts OTLP/HTTP posts and hands over each request's body.
fn collector() -> (u16, mpsc::Receiver<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the collector");
    let port = listener.local_addr().expect("an address").port();
    let (send, bodies) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let send = send.clone();
            std::thread::spawn(move || serve_collector_connection(stream, send));
        }
    });
    (port, bodies)
}

fn serve_collector_connection(stream: TcpStream, send: mpsc::Sender<Vec<u8>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let _ = send.send(body);
        let answered = writer.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
        );
        if answered.is_err() {
            return;
        }
    }
}

#[test]
fn with_an_otlp_endpoint_request_spans_reach_the_collector_in_the_client_s_trace() {
    let root = tempfile::Builder::new()
        .prefix("ledger-otlp-")
        .tempdir()
        .expect("a temporary folder");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (collector_port, bodies) = collector();
    let endpoint = format!("http://127.0.0.1:{collector_port}/v1/traces");
    let service = Service::start_with(
        &root.path().join("data"),
        &[
            ("LEDGER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let port = service.port();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let request = format!(
        "GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         traceparent: 00-{trace_id}-00f067aa0ba902b7-01\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // The span is exported in protobuf: the trace id appears as its 16 raw bytes.
    let wanted: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut seen = 0;
    let found = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match bodies.recv_timeout(left) {
            Ok(body) => {
                seen += 1;
                if body.windows(16).any(|window| window == wanted.as_slice()) {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    service.stop();
    assert!(
        found,
        "no exported span in trace {trace_id} ({seen} posts seen)"
    );
}
