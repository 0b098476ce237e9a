//! The machine the service runs on, and the ways it fails: a PostgreSQL cluster of its own
//! (`EmbeddedCluster`, full durability), the service as a child process (`ledger serve` with
//! `DATABASE_URL`), and the faults: SIGKILL of the service, PostgreSQL's immediate shutdown,
//! SIGKILL of the postmaster, SIGKILL of the writer's backend, and a power cut (everything
//! SIGKILLed at once).
//!
//! Everything here waits for conditions (the service ready, the database accepting
//! connections, processes gone), polling with a bounded number of tries.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use ledger::embedded::{Durability, EmbeddedCluster};

pub const ADMIN_TOKEN: &str = "chaos-admin-token-0123456789abcdef0123456789";
const POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    ServiceKill,
    PgImmediateStop,
    PostmasterKill,
    BackendKill,
    PowerCut,
}

impl FaultKind {
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::ServiceKill => "SIGKILL of the service",
            FaultKind::PgImmediateStop => "pg_ctl stop -m immediate",
            FaultKind::PostmasterKill => "SIGKILL of the postmaster",
            FaultKind::BackendKill => "SIGKILL of the writer's backend",
            FaultKind::PowerCut => "power cut (service and PostgreSQL SIGKILLed at once)",
        }
    }

    pub fn is_database_crash(self) -> bool {
        matches!(
            self,
            FaultKind::PgImmediateStop | FaultKind::PostmasterKill | FaultKind::BackendKill
        )
    }
}

/// One fault as it happened. Times in µs since the run started.
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: FaultKind,
    pub at_us: u64,
    /// When the database accepted connections again (database faults, power cuts).
    pub database_back_us: Option<u64>,
    /// When the service answered `/health/ready` again (service kills, power cuts).
    pub service_ready_us: Option<u64>,
    pub detail: String,
    /// Nothing was done (no writer backend to kill at that moment): not counted.
    pub skipped: bool,
}

#[derive(Debug, Default)]
pub struct Incidents {
    pub faults: Vec<Fault>,
    /// Starts of `ledger serve` that exited before being ready.
    pub failed_service_starts: Vec<String>,
    /// Starts of PostgreSQL that failed (and were tried again).
    pub failed_database_starts: Vec<String>,
    /// Exits of the service nobody caused.
    pub unexpected_exits: Vec<String>,
    /// How long each service start took until ready (ms).
    pub service_start_ms: Vec<u64>,
}

pub struct Lab {
    pub root: PathBuf,
    pub artifacts: PathBuf,
    start: Instant,
    runtime: tokio::runtime::Handle,
    cluster: Option<EmbeddedCluster>,
    /// Closing it (when the test ends, however it ends) stops the cluster and removes `root`.
    _watchdog: ChildStdin,
    service: Option<Child>,
    pub port: u16,
    signing_key: PathBuf,
    probe: reqwest::Client,
    pub incidents: Incidents,
    port_seed: u64,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn sigkill(pid: i32) {
    // SAFETY: sends a signal; no memory is shared with the target.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Makes this process the reaper of its orphaned descendants, as a machine's init is: the
/// postmaster, which `pg_ctl` leaves behind, becomes our child when `pg_ctl` exits, so that we
/// can reap it once it is killed. (This machine's PID 1 does not reap orphans: a killed
/// postmaster would stay a zombie, which `EmbeddedCluster` takes for a running server.)
fn become_subreaper() {
    // SAFETY: prctl on this process; no memory is shared.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
}

/// Reaps `pid` if it is a child of ours that has exited; true when the process is gone.
fn reap(pid: i32) -> bool {
    let mut status = 0;
    // SAFETY: waits for one given pid, without blocking; `status` is ours.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether the process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The processes whose parent is `parent` (a postmaster's backends and helpers).
fn children_of(parent: i32) -> Vec<i32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let parent_of = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|field| field.parse::<i32>().ok());
        if parent_of == Some(parent) {
            children.push(pid);
        }
    }
    children
}

/// Polls `condition` every 20 ms, at most `tries` times.
fn poll(tries: usize, mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..tries {
        if condition() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    condition()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Lab {
    /// Starts PostgreSQL under `root`, creates the `ledger` database and a signing key.
    pub fn new(
        root: PathBuf,
        artifacts: PathBuf,
        start: Instant,
        runtime: tokio::runtime::Handle,
        port_seed: u64,
    ) -> Lab {
        std::fs::create_dir_all(&artifacts).expect("the artifacts folder");
        become_subreaper();
        let cluster = EmbeddedCluster::start(&root, Durability::Full)
            .unwrap_or_else(|error| panic!("start PostgreSQL under {}: {error}", root.display()));
        let watchdog = cluster
            .remove_when_process_exits(&root)
            .expect("the cluster's watchdog");
        let signing_key = root.join("chaos-signing-key.pem");
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
        let mut lab = Lab {
            root,
            artifacts,
            start,
            runtime,
            cluster: Some(cluster),
            _watchdog: watchdog,
            service: None,
            port: 0,
            signing_key,
            probe: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("an HTTP client"),
            incidents: Incidents::default(),
            port_seed,
        };
        let admin = lab.pg_config("postgres");
        lab.runtime
            .block_on(async move {
                let (client, connection) = admin.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute("CREATE DATABASE ledger").await
            })
            .expect("create the ledger database");
        lab.port = lab.free_port();
        lab
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn cluster(&self) -> &EmbeddedCluster {
        self.cluster.as_ref().expect("a cluster")
    }

    pub fn pg_config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = self.cluster().pg_config(database);
        config.connect_timeout(Duration::from_secs(2));
        config
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("pg")
    }

    pub fn service_log(&self) -> PathBuf {
        self.artifacts.join("service.log")
    }

    pub fn postgres_log(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    /// A free port below the ephemeral range, so that no client connection takes it between
    /// two starts of the service.
    fn free_port(&mut self) -> u16 {
        for _ in 0..200 {
            self.port_seed = self
                .port_seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let port = 20_000 + (self.port_seed >> 33) as u16 % 12_000;
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return port;
            }
        }
        panic!("no free port between 20000 and 32000");
    }

    fn database_url(&self) -> String {
        let cluster = self.cluster();
        format!(
            "host={} port={} user={} dbname=ledger",
            cluster.socket_dir().display(),
            cluster.port(),
            cluster.superuser()
        )
    }

    /// Starts `ledger serve` and waits until `/health/ready` answers 200. A start that exits
    /// first is recorded and tried again (on another port if the port was taken).
    pub fn start_service(&mut self) -> u64 {
        for _ in 0..5 {
            let started = Instant::now();
            let log = File::options()
                .create(true)
                .append(true)
                .open(self.service_log())
                .expect("the service log");
            let mut command = Command::new(env!("CARGO_BIN_EXE_ledger"));
            command.arg("serve");
            for (name, _) in std::env::vars() {
                if name.starts_with("LEDGER_") || name == "DATABASE_URL" {
                    command.env_remove(name);
                }
            }
            command
                .env("DATABASE_URL", self.database_url())
                .env("LEDGER_LISTEN", format!("127.0.0.1:{}", self.port))
                .env("LEDGER_BOOTSTRAP_ADMIN_KEY", ADMIN_TOKEN)
                .env("LEDGER_SIGNING_KEY_FILE", &self.signing_key)
                .env("LEDGER_DATA_DIR", self.root.join("unused-data-dir"))
                .env("LEDGER_RATE_LIMIT_PER_SECOND", "1000000")
                .env("LEDGER_RATE_LIMIT_BURST", "1000000")
                .env("LEDGER_HTTP_WORKERS", "2")
                .env("LEDGER_SHUTDOWN_TIMEOUT_SECONDS", "2")
                .env("LEDGER_INTEGRITY_CHECK_INTERVAL_SECONDS", "0")
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log);
            // SAFETY: prctl in the child before exec; it touches no memory of the parent.
            // The service dies with this thread (the test's), even if the test is killed.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut child = command.spawn().expect("spawn ledger serve");
            let url = format!("http://127.0.0.1:{}/health/ready", self.port);
            let mut exited = None;
            let ready = poll(3_000, || {
                if let Ok(Some(status)) = child.try_wait() {
                    exited = Some(status);
                    return true;
                }
                let probe = self.probe.get(&url);
                self.runtime
                    .block_on(probe.send())
                    .is_ok_and(|response| response.status() == 200)
            });
            match (ready, exited) {
                (true, None) => {
                    let took = started.elapsed().as_millis() as u64;
                    self.incidents.service_start_ms.push(took);
                    self.service = Some(child);
                    return self.now_us();
                }
                (_, exited) => {
                    if exited.is_none() {
                        sigkill(child.id() as i32);
                        let _ = child.wait();
                    }
                    let log = tail(&self.service_log(), 5);
                    self.incidents.failed_service_starts.push(format!(
                        "exit {exited:?} after {} ms: {log}",
                        started.elapsed().as_millis()
                    ));
                    if log.contains("cannot listen") {
                        self.port = self.free_port();
                    }
                }
            }
        }
        panic!(
            "ledger serve did not become ready in 5 starts:\n{}",
            self.incidents.failed_service_starts.join("\n")
        );
    }

    pub fn kill_service(&mut self) {
        if let Some(mut child) = self.service.take() {
            sigkill(child.id() as i32);
            let _ = child.wait();
        }
    }

    /// Stops the service with SIGTERM (graceful), SIGKILL after 10 s.
    pub fn stop_service(&mut self) {
        if let Some(mut child) = self.service.take() {
            // SAFETY: sends a signal to our child.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            if !poll(500, || matches!(child.try_wait(), Ok(Some(_)))) {
                sigkill(child.id() as i32);
            }
            let _ = child.wait();
        }
    }

    /// Restarts the service if it exited although nobody killed it.
    pub fn watch_service(&mut self) {
        let exited = match self.service.as_mut().map(|child| child.try_wait()) {
            Some(Ok(Some(status))) => Some(status),
            _ => None,
        };
        if let Some(status) = exited {
            self.service = None;
            self.incidents.unexpected_exits.push(format!(
                "at {:.1} s, {status}: {}",
                self.now_us() as f64 / 1e6,
                tail(&self.service_log(), 5)
            ));
            self.start_service();
        }
    }

    /// Waits `duration` while watching the service.
    pub fn idle(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            self.watch_service();
            std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
        }
    }

    fn database_accepts(&self) -> bool {
        let config = self.pg_config("ledger");
        self.runtime.block_on(async move {
            let connect = async {
                let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client.simple_query("SELECT 1").await
            };
            matches!(
                tokio::time::timeout(Duration::from_secs(2), connect).await,
                Ok(Ok(_))
            )
        })
    }

    fn postmaster_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Starts PostgreSQL again after a crash (recovery from the WAL), as the next process on the
    /// folder would: the old value lets go of the owner lock as a killed owner would.
    fn restart_database(&mut self) -> u64 {
        if let Some(cluster) = self.cluster.take() {
            cluster.abandon();
        }
        for _ in 0..50 {
            match EmbeddedCluster::start(&self.root, Durability::Full) {
                Ok(cluster) => {
                    self.cluster = Some(cluster);
                    if poll(3_000, || self.database_accepts()) {
                        return self.now_us();
                    }
                    panic!(
                        "PostgreSQL started but accepts no connection:\n{}",
                        tail(&self.postgres_log(), 20)
                    );
                }
                Err(error) => {
                    self.incidents
                        .failed_database_starts
                        .push(error.to_string().chars().take(300).collect());
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        panic!(
            "PostgreSQL did not start again:\n{}\n{}",
            self.incidents.failed_database_starts.join("\n"),
            tail(&self.postgres_log(), 20)
        );
    }

    /// SIGKILLs the postmaster (and, for a power cut, every process of the cluster at once),
    /// then waits until none of them is left.
    fn kill_postmaster(&mut self, with_children: bool) -> String {
        let Some(pid) = self.postmaster_pid() else {
            return "no postmaster.pid".into();
        };
        let children = children_of(pid);
        sigkill(pid);
        if with_children {
            children.iter().copied().for_each(sigkill);
        }
        let gone = poll(1_500, || {
            let mut all = reap(pid);
            for child in &children {
                all &= reap(*child) || !alive(*child);
            }
            all
        });
        format!(
            "postmaster {pid} and {} children{}",
            children.len(),
            if gone { "" } else { " (some still alive)" }
        )
    }

    pub fn inject(&mut self, kind: FaultKind) {
        let at_us = self.now_us();
        let mut fault = Fault {
            kind,
            at_us,
            database_back_us: None,
            service_ready_us: None,
            detail: String::new(),
            skipped: false,
        };
        match kind {
            FaultKind::ServiceKill => {
                let pid = self.service.as_ref().map(Child::id);
                self.kill_service();
                fault.detail = format!("service pid {pid:?}");
                fault.service_ready_us = Some(self.start_service());
            }
            FaultKind::PgImmediateStop => {
                let pid = self.postmaster_pid();
                let output = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
                let reaped = pid.is_none_or(|pid| poll(1_500, || reap(pid)));
                fault.detail = format!("{output} (postmaster {pid:?} reaped: {reaped})");
                fault.database_back_us = Some(self.restart_database());
            }
            FaultKind::PostmasterKill => {
                fault.detail = self.kill_postmaster(false);
                fault.database_back_us = Some(self.restart_database());
            }
            FaultKind::BackendKill => match self.kill_writer_backend() {
                Ok(detail) => {
                    fault.detail = detail;
                    fault.database_back_us = Some(self.now_us());
                }
                Err(reason) => {
                    fault.detail = reason;
                    fault.skipped = true;
                }
            },
            FaultKind::PowerCut => {
                if let Some(child) = &self.service {
                    sigkill(child.id() as i32);
                }
                fault.detail = self.kill_postmaster(true);
                self.kill_service();
                fault.database_back_us = Some(self.restart_database());
                fault.service_ready_us = Some(self.start_service());
            }
        }
        self.incidents.faults.push(fault);
    }

    fn pg_ctl(&self, args: &[&str]) -> String {
        let program = self.cluster().bin_dir().join("pg_ctl");
        let data_dir = self.data_dir();
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command
                .args(["-u", self.cluster().superuser(), "--"])
                .arg(program);
            command
        } else {
            Command::new(program)
        };
        let output = command
            .arg("-D")
            .arg(&data_dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl");
        format!(
            "pg_ctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout).trim()
        )
    }

    /// SIGKILLs the backend of the ledger's writer (preferably inside a batch's transaction),
    /// found in `pg_stat_activity` on a connection of our own. PostgreSQL then restarts all
    /// backends (crash recovery); returns once our connection was cut and a new one works.
    fn kill_writer_backend(&mut self) -> Result<String, String> {
        let config = self.pg_config("ledger");
        let watcher = self.runtime.block_on(async move {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.ok()?;
            tokio::spawn(connection);
            Some(client)
        });
        let Some(watcher) = watcher else {
            return Err("skipped: no connection to look for the writer".into());
        };
        let query = "SELECT pid, xact_start IS NOT NULL, coalesce(left(query, 60), '') \
                     FROM pg_stat_activity \
                     WHERE application_name = 'ledger' AND datname = 'ledger' \
                       AND backend_type = 'client backend' \
                       AND (query ILIKE '%FOR UPDATE%' OR query ILIKE '%INSERT INTO journal%' \
                            OR query ILIKE 'COMMIT%' OR query ILIKE '%enable_seqscan%') \
                     ORDER BY xact_start IS NOT NULL DESC, state_change DESC LIMIT 1";
        let mut chosen: Option<(i32, bool, String)> = None;
        poll(200, || {
            let rows = self.runtime.block_on(watcher.query(query, &[]));
            if let Some(row) = rows.ok().and_then(|rows| rows.into_iter().next()) {
                let found: (i32, bool, String) = (row.get(0), row.get(1), row.get(2));
                let in_transaction = found.1;
                chosen = Some(found);
                return in_transaction;
            }
            false
        });
        let Some((pid, in_transaction, last_query)) = chosen else {
            return Err("skipped: no writer backend found".into());
        };
        sigkill(pid);
        // The postmaster notices, ends every backend (ours too) and recovers.
        let cut = poll(1_000, || {
            self.runtime
                .block_on(watcher.simple_query("SELECT 1"))
                .is_err()
        });
        let back = poll(3_000, || self.database_accepts());
        assert!(
            back,
            "PostgreSQL did not come back after a backend was killed"
        );
        Ok(format!(
            "backend {pid} (in a transaction: {in_transaction}, last query {last_query:?}){}",
            if cut {
                ""
            } else {
                "; the postmaster did not cut other connections"
            }
        ))
    }

    /// Stops everything in order: the service (SIGTERM), then PostgreSQL.
    pub fn shut_down(&mut self) {
        self.stop_service();
        if let Some(cluster) = self.cluster.take() {
            if let Err(error) = cluster.stop() {
                eprintln!("stopping PostgreSQL: {error}");
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.kill_service();
    }
}
