//! A pg_auto_failover formation on loopback ports: a monitor and data nodes, each
//! `pg_autoctl` running as the `postgres` user when the test runs as root (PostgreSQL refuses
//! root), in a folder of the system's temporary directory that a watchdog removes when the test
//! process ends, however it ends.
//!
//! A node "dies" as a machine does: its `pg_autoctl` (the keeper, which would otherwise restart
//! PostgreSQL at once and no failover would happen), its postmaster and every backend are
//! SIGKILLed together (they share a process group). Everything here waits for conditions on the
//! monitor's own tables (`pgautofailover.node`), polling with deadlines.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(50);
const SERVICE_USER: &str = "postgres";
const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// Monitor settings that make a failover take seconds, not a minute (the defaults suit real
/// networks: docs/OPERATIONS.md).
const MONITOR_SETTINGS: &[(&str, &str)] = &[
    ("pgautofailover.health_check_period", "1000"),
    ("pgautofailover.health_check_timeout", "1000"),
    ("pgautofailover.health_check_max_retries", "1"),
    ("pgautofailover.health_check_retry_delay", "500"),
    ("pgautofailover.node_considered_unhealthy_timeout", "2000"),
    ("pgautofailover.primary_demote_timeout", "3000"),
    ("pgautofailover.startup_grace_period", "2000"),
];

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Where `pg_autoctl` is, or why the test cannot run, with how to install it.
pub fn pg_autoctl_or_explain() -> Result<PathBuf, String> {
    let install =
        "install them with `apt-get install postgresql-15-auto-failover pg-auto-failover-cli` \
                   (.ci/run does; see docs/OPERATIONS.md)";
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from(BIN_DIR)])
        .map(|dir| dir.join("pg_autoctl"))
        .find(|path| path.is_file());
    let Some(pg_autoctl) = found else {
        return Err(format!(
            "the failover test needs pg_auto_failover: no pg_autoctl on PATH or in {BIN_DIR}; \
             {install}"
        ));
    };
    if !Path::new("/usr/share/postgresql/15/extension/pgautofailover.control").is_file() {
        return Err(format!(
            "the failover test needs the pgautofailover extension of PostgreSQL 15 \
             (/usr/share/postgresql/15/extension/pgautofailover.control is missing); {install}"
        ));
    }
    if !Path::new(BIN_DIR).join("pg_ctl").is_file() {
        return Err(format!(
            "the failover test needs PostgreSQL 15's server ({BIN_DIR}/pg_ctl): \
             apt-get install postgresql-15"
        ));
    }
    Ok(pg_autoctl)
}

/// Polls `condition` every 50 ms until `deadline`; true when it held.
pub fn poll_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

fn free_port(seed: &mut u64) -> u16 {
    for _ in 0..500 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let port = 33_000 + (*seed >> 33) as u16 % 12_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 33000 and 45000");
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Reaps `pid` if it is our child and has exited.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waits for one given pid without blocking; `status` is ours.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// The processes of a process group (a node's pg_autoctl, its postmaster and backends).
fn group_members(group: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2))
            .and_then(|field| field.parse::<i32>().ok());
        if pgrp == Some(group) {
            members.push(pid);
        }
    }
    members
}

/// One data node.
pub struct Node {
    pub name: String,
    pub port: u16,
    pgdata: PathBuf,
    log: PathBuf,
    process: Option<Child>,
}

/// A node as the monitor sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeState {
    pub name: String,
    pub reported: String,
    pub assigned: String,
}

pub struct Formation {
    pub root: PathBuf,
    pg_autoctl: PathBuf,
    monitor_port: u16,
    monitor: Option<Child>,
    monitor_log: PathBuf,
    pub nodes: Vec<Node>,
    /// Closing it (when the test ends, however it ends) kills every process of the formation
    /// and removes `root`.
    _watchdog: ChildStdin,
    runtime: tokio::runtime::Handle,
}

impl Formation {
    /// A monitor with short timeouts and `nodes` data nodes (the first the primary, the others
    /// synchronous standbys), each with a database `ledger`; returns once the monitor reports
    /// one primary and every other node a secondary.
    pub fn start(
        root: PathBuf,
        nodes: usize,
        port_seed: u64,
        runtime: tokio::runtime::Handle,
    ) -> Formation {
        let pg_autoctl = pg_autoctl_or_explain().unwrap_or_else(|why| panic!("{why}"));
        // The kernel's init does not reap orphans on this kind of machine: a killed postmaster
        // would stay a zombie, which pg_autoctl takes for a running server.
        // SAFETY: prctl on this process; no memory is shared.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        }
        std::fs::create_dir_all(&root).expect("the formation's folder");
        for dir in ["run", "config", "data"] {
            std::fs::create_dir_all(root.join(dir)).expect("a formation folder");
        }
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", &format!("{SERVICE_USER}:")])
                .arg(&root)
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "chown {} to {SERVICE_USER}",
                root.display()
            );
        }
        let watchdog = Formation::watchdog(&root);
        let mut seed = port_seed;
        let monitor_port = free_port(&mut seed);
        let mut formation = Formation {
            monitor_log: root.join("monitor.log"),
            root,
            pg_autoctl,
            monitor_port,
            monitor: None,
            nodes: Vec::new(),
            _watchdog: watchdog,
            runtime,
        };
        let monitor_data = formation.root.join("monitor");
        let create = formation.run_to_end(&[
            "create",
            "monitor",
            "--pgdata",
            monitor_data.to_str().expect("utf-8"),
            "--pgport",
            &monitor_port.to_string(),
            "--hostname",
            "127.0.0.1",
            "--auth",
            "trust",
            "--no-ssl",
            "--pgctl",
            &format!("{BIN_DIR}/pg_ctl"),
        ]);
        assert!(create.0, "pg_autoctl create monitor failed:\n{}", create.1);
        let log = formation.monitor_log.clone();
        formation.monitor = Some(formation.spawn(
            &["run", "--pgdata", monitor_data.to_str().expect("utf-8")],
            &log,
        ));
        let monitor = formation.monitor_config();
        let ready = poll_until(Duration::from_secs(30), || {
            formation
                .runtime
                .block_on(async {
                    // One statement per query: ALTER SYSTEM refuses a transaction block.
                    for (name, value) in MONITOR_SETTINGS {
                        execute(&monitor, &format!("ALTER SYSTEM SET {name} = {value}")).await?;
                    }
                    execute(&monitor, "SELECT pg_reload_conf()").await
                })
                .is_ok()
        });
        assert!(
            ready,
            "the monitor did not accept connections:\n{}",
            tail(&formation.monitor_log, 20)
        );
        for index in 0..nodes {
            let port = free_port(&mut seed);
            let name = format!("node{}", index + 1);
            let node = Node {
                pgdata: formation.root.join(&name),
                log: formation.root.join(format!("{name}.log")),
                name,
                port,
                process: None,
            };
            formation.nodes.push(node);
            if index > 0 {
                // pg_basebackup asks for a spread checkpoint, which writes the dirty buffers
                // of the new primary (its CREATE DATABASE) at a paced rate: a minute here.
                // An immediate checkpoint first leaves it nothing to pace.
                let primary = formation.node_config(0);
                let done = poll_until(Duration::from_secs(60), || {
                    formation
                        .runtime
                        .block_on(execute(&primary, "CHECKPOINT"))
                        .is_ok()
                });
                assert!(
                    done,
                    "the first node did not accept connections:\n{}",
                    formation.logs()
                );
            }
            formation.create_node(index);
            // One at a time: the first registers as the primary, the next ones join it.
            let registered = poll_until(Duration::from_secs(60), || {
                formation
                    .states()
                    .iter()
                    .any(|state| state.name == formation.nodes[index].name)
            });
            let single = index > 0
                || poll_until(Duration::from_secs(60), || {
                    formation
                        .states()
                        .iter()
                        .any(|state| state.reported == "single" && state.assigned == "single")
                });
            assert!(
                registered && single,
                "{} did not register with the monitor:\n{}",
                formation.nodes[index].name,
                tail(&formation.nodes[index].log, 30)
            );
        }
        formation.wait_until_healthy(Duration::from_secs(90));
        if nodes >= 3 {
            // With two standbys or more, a commit can wait for one of them and the formation
            // still take writes when one standby is gone (pg_auto_failover refuses
            // number_sync_standbys = 1 with a single standby: it keeps writes going with
            // 0, `ANY 1 (standby)`, and drops to asynchronous only while the standby is down).
            let monitor = formation.monitor_config();
            formation
                .runtime
                .block_on(execute(
                    &monitor,
                    "SELECT pgautofailover.set_formation_number_sync_standbys('default', 1)",
                ))
                .expect("set number_sync_standbys to 1");
            formation.wait_until_healthy(Duration::from_secs(60));
        }
        formation
    }

    /// A shell that waits for our end of its stdin to close, then kills every process of the
    /// formation (whatever their user) and removes its folder. It is never waited for: it must
    /// outlive this process.
    #[allow(clippy::zombie_processes)]
    fn watchdog(root: &Path) -> ChildStdin {
        let quoted = format!("'{}'", root.display().to_string().replace('\'', "'\\''"));
        // A monitor's background workers outlive a SIGKILLed postmaster (pg_auto_failover's
        // health-check worker does not watch for its death) and escape the group kills: any
        // process still working in the formation's folder goes too.
        let stragglers = format!(
            "for p in /proc/[0-9]*; do case \"$(readlink \"$p/cwd\" 2>/dev/null)\" in \
               {quoted}*) kill -9 \"${{p#/proc/}}\" 2>/dev/null;; esac; done"
        );
        let script = format!(
            "cat >/dev/null; \
             for f in $(find {quoted} -name postmaster.pid 2>/dev/null); do \
               kill -9 $(head -1 \"$f\") 2>/dev/null; done; \
             for g in $(cat {quoted}/process-groups 2>/dev/null); do \
               kill -9 -- -\"$g\" 2>/dev/null; done; \
             sleep 1; {stragglers}; rm -rf {quoted}"
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the formation's watchdog");
        child.stdin.take().expect("stdin was piped")
    }

    fn command(&self, args: &[&str]) -> Command {
        let env = [
            format!("PATH={BIN_DIR}:/usr/local/bin:/usr/bin:/bin"),
            format!("XDG_CONFIG_HOME={}", self.root.join("config").display()),
            format!("XDG_DATA_HOME={}", self.root.join("data").display()),
            format!("XDG_RUNTIME_DIR={}", self.root.join("run").display()),
            format!("HOME={}", self.root.display()),
        ];
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", SERVICE_USER, "--", "env"]);
            command.args(&env);
            command.arg(&self.pg_autoctl);
            command
        } else {
            let mut command = Command::new("env");
            command.args(&env);
            command.arg(&self.pg_autoctl);
            command
        };
        command.args(args).current_dir(&self.root);
        command
    }

    /// Runs a pg_autoctl command to its end: whether it succeeded, and its output.
    fn run_to_end(&self, args: &[&str]) -> (bool, String) {
        let output = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .expect("run pg_autoctl");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    }

    /// Starts a long-running pg_autoctl in a process group of its own (a "machine").
    fn spawn(&self, args: &[&str], log: &Path) -> Child {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("a log file");
        let mut command = self.command(args);
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0);
        let child = command.spawn().expect("spawn pg_autoctl");
        // For the watchdog: the process groups to kill when the test ends.
        let mut groups = File::options()
            .create(true)
            .append(true)
            .open(self.root.join("process-groups"))
            .expect("the process group list");
        writeln!(groups, "{}", child.id()).expect("write the process group list");
        child
    }

    fn create_node(&mut self, index: usize) {
        let monitor = format!(
            "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover?sslmode=disable",
            self.monitor_port
        );
        let node = &self.nodes[index];
        let args = [
            "create".to_string(),
            "postgres".into(),
            "--pgdata".into(),
            node.pgdata.display().to_string(),
            "--pgport".into(),
            node.port.to_string(),
            "--listen".into(),
            "127.0.0.1".into(),
            "--hostname".into(),
            "127.0.0.1".into(),
            "--name".into(),
            node.name.clone(),
            "--monitor".into(),
            monitor,
            "--auth".into(),
            "trust".into(),
            "--no-ssl".into(),
            "--dbname".into(),
            "ledger".into(),
            "--pgctl".into(),
            format!("{BIN_DIR}/pg_ctl"),
            "--run".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = node.log.clone();
        let child = self.spawn(&args, &log);
        self.nodes[index].process = Some(child);
    }

    pub fn monitor_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.monitor_port)
            .user(SERVICE_USER)
            .dbname("pg_auto_failover")
            .connect_timeout(Duration::from_secs(2));
        config
    }

    /// A connection configuration for one node's `ledger` database.
    pub fn node_config(&self, index: usize) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.nodes[index].port)
            .user(SERVICE_USER)
            .dbname("ledger")
            .connect_timeout(Duration::from_secs(2));
        config
    }

    /// The formation's URL: every node, `target_session_attrs` as given (`read-write` for the
    /// primary, `read-only` for a standby).
    pub fn url(&self, target_session_attrs: &str) -> String {
        let hosts = vec!["127.0.0.1"; self.nodes.len()].join(",");
        let ports = self
            .nodes
            .iter()
            .map(|node| node.port.to_string())
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "host={hosts} port={ports} user={SERVICE_USER} dbname=ledger \
             target_session_attrs={target_session_attrs}"
        )
    }

    /// What the monitor says of every node (empty when it cannot be asked).
    pub fn states(&self) -> Vec<NodeState> {
        let monitor = self.monitor_config();
        let rows = self.runtime.block_on(async move {
            let (client, connection) = monitor.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client
                .query(
                    "SELECT nodename, reportedstate::text, goalstate::text \
                     FROM pgautofailover.node ORDER BY nodeid",
                    &[],
                )
                .await
        });
        rows.map(|rows| {
            rows.iter()
                .map(|row| NodeState {
                    name: row.get(0),
                    reported: row.get(1),
                    assigned: row.get(2),
                })
                .collect()
        })
        .unwrap_or_default()
    }

    /// The node the monitor has as primary, reported and assigned, if one is.
    pub fn primary(&self) -> Option<usize> {
        let states = self.states();
        let state = states.iter().find(|state| {
            state.reported == state.assigned
                && matches!(
                    state.reported.as_str(),
                    "primary" | "wait_primary" | "single"
                )
        })?;
        self.nodes.iter().position(|node| node.name == state.name)
    }

    /// Waits until one node is `primary` and every other, alive, `secondary`.
    pub fn wait_until_healthy(&self, deadline: Duration) {
        self.wait_until_healthy_hurrying(deadline, None);
    }

    /// Waits until the formation is healthy again after node `rejoining` was started again,
    /// asking the primary for an immediate checkpoint every second meanwhile: when `pg_rewind`
    /// fails, pg_autoctl (2.0) falls back to `pg_basebackup` without `--checkpoint=fast`, which
    /// waits for a paced checkpoint of the primary (minutes under load); an immediate request
    /// makes a checkpoint in progress finish at once.
    pub fn wait_until_rejoined(&self, rejoining: usize, deadline: Duration) {
        self.wait_until_healthy_hurrying(deadline, Some(rejoining));
    }

    fn wait_until_healthy_hurrying(&self, deadline: Duration, rejoining: Option<usize>) {
        let mut last_checkpoint = Instant::now();
        let healthy = poll_until(deadline, || {
            if let (Some(rejoining), true) = (
                rejoining,
                last_checkpoint.elapsed() >= Duration::from_secs(1),
            ) {
                if let Some(primary) = self.primary().filter(|primary| *primary != rejoining) {
                    self.checkpoint(primary);
                }
                last_checkpoint = Instant::now();
            }
            let states = self.states();
            states.len() == self.nodes.len()
                && states.iter().all(|state| state.reported == state.assigned)
                && states.iter().filter(|s| s.reported == "primary").count() == 1
                && states.iter().filter(|s| s.reported == "secondary").count()
                    == self.nodes.len() - 1
        });
        assert!(
            healthy,
            "the formation did not become healthy: {:?}\n{}",
            self.states(),
            self.nodes
                .iter()
                .map(|node| format!("--- {}:\n{}", node.name, tail(&node.log, 25)))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// Waits until a node other than `old` is the primary, reported and assigned (the standby
    /// promoted); returns it.
    pub fn wait_for_promotion(&self, old: usize, deadline: Duration) -> usize {
        let mut promoted = None;
        let done = poll_until(deadline, || {
            promoted = self.primary().filter(|index| *index != old);
            promoted.is_some()
        });
        assert!(
            done,
            "no standby was promoted: {:?}\n{}",
            self.states(),
            tail(&self.monitor_log, 30)
        );
        promoted.expect("promoted")
    }

    /// The machine of node `index` dies: SIGKILL of its pg_autoctl, postmaster and backends at
    /// once. Returns when every one of them is gone, with the moment the signal was sent.
    pub fn kill_node(&mut self, index: usize) -> Instant {
        let child = self.nodes[index]
            .process
            .take()
            .expect("the node is running");
        let group = child.id() as i32;
        let members = group_members(group);
        // SAFETY: sends a signal to a process group of ours.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let killed_at = Instant::now();
        let mut child = child;
        let _ = child.wait();
        let gone = poll_until(Duration::from_secs(10), || {
            members.iter().for_each(|pid| reap(*pid));
            members.iter().all(|pid| !alive(*pid))
        });
        assert!(
            gone,
            "the processes of {} did not die",
            self.nodes[index].name
        );
        killed_at
    }

    /// An immediate checkpoint on node `index` (so that a base backup of it need not wait for
    /// a paced one).
    pub fn checkpoint(&self, index: usize) {
        let config = self.node_config(index);
        let _ = self.runtime.block_on(execute(&config, "CHECKPOINT"));
    }

    /// Starts a killed node's pg_autoctl again: it rejoins as a standby of the new primary
    /// (pg_rewind, or a new base backup).
    pub fn restart_node(&mut self, index: usize) {
        assert!(self.nodes[index].process.is_none(), "the node is running");
        let pgdata = self.nodes[index].pgdata.display().to_string();
        let log = self.nodes[index].log.clone();
        let child = self.spawn(&["run", "--pgdata", &pgdata], &log);
        self.nodes[index].process = Some(child);
    }

    /// The synchronous standby setting of the node `index` and how its standbys replicate.
    pub fn replication(&self, index: usize) -> (String, Vec<String>) {
        let config = self.node_config(index);
        self.runtime
            .block_on(async move {
                let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                let names: String = client
                    .query_one("SHOW synchronous_standby_names", &[])
                    .await?
                    .get(0);
                let states = client
                    .query("SELECT sync_state FROM pg_stat_replication", &[])
                    .await?
                    .iter()
                    .map(|row| row.get::<_, String>(0))
                    .collect();
                Ok::<_, tokio_postgres::Error>((names, states))
            })
            .unwrap_or_else(|error| panic!("read the replication state: {error}"))
    }

    /// How many backends of node `index` serve connections of this `application_name`.
    pub fn connections_named(&self, index: usize, application: &str) -> i64 {
        let config = self.node_config(index);
        let application = application.to_owned();
        self.runtime
            .block_on(async move {
                let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        &[&application],
                    )
                    .await
                    .map(|row| row.get::<_, i64>(0))
            })
            .unwrap_or(0)
    }

    /// Logs of the formation, for a failure's message.
    pub fn logs(&self) -> String {
        let mut text = format!("--- monitor:\n{}\n", tail(&self.monitor_log, 20));
        for node in &self.nodes {
            text.push_str(&format!("--- {}:\n{}\n", node.name, tail(&node.log, 20)));
        }
        text
    }

    pub fn copy_logs_to(&self, folder: &Path) {
        let _ = std::fs::create_dir_all(folder);
        let _ = std::fs::copy(&self.monitor_log, folder.join("monitor.log"));
        for node in &self.nodes {
            let _ = std::fs::copy(&node.log, folder.join(format!("{}.log", node.name)));
        }
    }
}

impl Drop for Formation {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.process.take() {
                // SAFETY: signals a process group of ours.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
            }
        }
        if let Some(mut child) = self.monitor.take() {
            // SAFETY: as above.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
        }
    }
}

pub async fn execute(
    config: &tokio_postgres::Config,
    sql: &str,
) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute(sql).await
}
