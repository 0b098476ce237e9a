//! `ledger serve` as a child process on a formation's multi-host URL (as tests/chaos starts it),
//! and a prober that watches what a client sees of the service during a failover.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::formation::poll_until;

pub const ADMIN_TOKEN: &str = "failover-admin-token-0123456789abcdef0123456789";

pub struct Service {
    child: Child,
    pub port: u16,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("a free port");
    listener.local_addr().expect("an address").port()
}

impl Service {
    /// Starts the service on `database_url` and waits until `/health/ready` answers 200.
    pub fn start(
        database_url: &str,
        root: &Path,
        log: PathBuf,
        runtime: &tokio::runtime::Handle,
    ) -> Service {
        let signing_key = root.join("signing-key.pem");
        if !signing_key.exists() {
            let output = Command::new(env!("CARGO_BIN_EXE_ledger"))
                .args(["keys", "generate", "--out"])
                .arg(&signing_key)
                .output()
                .expect("run ledger keys generate");
            assert!(
                output.status.success(),
                "ledger keys generate: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let port = free_port();
        let file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .expect("the service log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
        command.arg("serve");
        for (name, _) in std::env::vars() {
            if name.starts_with("LEDGER_") || name == "DATABASE_URL" {
                command.env_remove(name);
            }
        }
        command
            .env("DATABASE_URL", database_url)
            .env("LEDGER_LISTEN", format!("127.0.0.1:{port}"))
            .env("LEDGER_BOOTSTRAP_ADMIN_KEY", ADMIN_TOKEN)
            .env("LEDGER_SIGNING_KEY_FILE", &signing_key)
            .env("LEDGER_DATA_DIR", root.join("unused-data-dir"))
            .env("LEDGER_RATE_LIMIT_PER_SECOND", "1000000")
            .env("LEDGER_RATE_LIMIT_BURST", "1000000")
            .env("LEDGER_HTTP_WORKERS", "2")
            .env("LEDGER_CONNECT_TIMEOUT_MS", "2000")
            .env("LEDGER_SHUTDOWN_TIMEOUT_SECONDS", "2")
            .env("LEDGER_INTEGRITY_CHECK_INTERVAL_SECONDS", "0")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file);
        // SAFETY: prctl in the child before exec; the service dies with the test.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().expect("spawn ledger serve");
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let url = format!("http://127.0.0.1:{port}/health/ready");
        let mut exited = None;
        let ready = poll_until(Duration::from_secs(60), || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            runtime
                .block_on(probe.get(&url).send())
                .is_ok_and(|response| response.status() == 200)
        });
        assert!(
            ready && exited.is_none(),
            "ledger serve did not become ready (exit {exited:?}):\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Service { child, port }
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: signals our child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        if !poll_until(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What a prober saw: every answer other than 200, with whether it named `Retry-After`, and
/// the slowest answer.
#[derive(Debug, Default)]
pub struct Probed {
    pub answers: usize,
    pub non_200: Vec<(u16, String, bool)>,
    pub errors: Vec<String>,
    pub slowest: Duration,
}

/// GETs an account every 20 ms (a read on the primary's pool) and the journal's head page (a
/// read of history), until `stop`.
pub async fn probe(
    base: String,
    token: String,
    paths: Vec<String>,
    stop: Arc<AtomicBool>,
    probed: Arc<Mutex<Probed>>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    while !stop.load(Ordering::SeqCst) {
        for path in &paths {
            let started = Instant::now();
            let result = http
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await;
            let took = started.elapsed();
            let seen = match result {
                Ok(response) if response.status() == 200 => None,
                Ok(response) => {
                    let retry_after = response.headers().contains_key("retry-after");
                    let status = response.status().as_u16();
                    let body = response.text().await.unwrap_or_default();
                    let code = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|json| json["code"].as_str().map(str::to_owned))
                        .unwrap_or(body);
                    Some(Ok((status, code, retry_after)))
                }
                Err(error) => Some(Err(error.to_string())),
            };
            let mut probed = probed.lock().expect("never poisoned");
            probed.answers += 1;
            probed.slowest = probed.slowest.max(took);
            match seen {
                None => {}
                Some(Ok(answer)) => probed.non_200.push(answer),
                Some(Err(error)) => probed.errors.push(error),
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
