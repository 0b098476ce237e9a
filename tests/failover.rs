//! High availability on PostgreSQL's own replication (issue 15; docs/RELIABILITY.md,
//! docs/OPERATIONS.md): a pg_auto_failover formation on loopback ports (a monitor and data nodes
//! with synchronous replication, short monitor timeouts), `ledger serve` on the formation's
//! multi-host URL (`target_session_attrs=read-write`), concurrent retrying clients (the chaos
//! harness's clients, model and checker), and the primary's machine killed mid-load: its
//! pg_autoctl and its postmaster SIGKILLed together. The monitor promotes the standby; the
//! clients carry on; then every acknowledged transfer must be in the journal exactly once,
//! no refused request applied, every answer what the model says, the database's invariants,
//! the integrity check and `ledger-verify` on a full export must pass, and no request may have
//! been answered 500 or left hanging.
//!
//! `cargo test --test failover` runs the short profile (one failover); `load/failover.sh` the
//! long one (`FAILOVER_PROFILE=long`: failovers back and forth, the old primary rejoining as a
//! standby each time). Without pg_auto_failover installed the tests fail, saying how to
//! install it.
//!
//! A second test reads from a hot standby (`LEDGER_READ_DATABASE_URL`): an export served by the
//! standby equals the primary's line for line, and a read that needs what the standby has not
//! replayed yet is answered by the primary.

#[allow(dead_code)]
#[path = "chaos/audit.rs"]
mod audit;
#[allow(dead_code)]
#[path = "chaos/checker.rs"]
mod checker;
#[allow(dead_code)]
#[path = "chaos/client.rs"]
mod client;
#[path = "failover/formation.rs"]
mod formation;
#[allow(dead_code)]
#[path = "chaos/history.rs"]
mod history;
#[allow(dead_code)]
#[path = "chaos/model.rs"]
mod model;
#[path = "failover/service.rs"]
mod service;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use client::{run_client, Shared};
use formation::{poll_until, Formation};
use history::{env_number, Outcome, Request, XorShift};
use service::{Probed, Service, ADMIN_TOKEN};

const LEDGER: &str = "chaos";

#[derive(Clone, Debug)]
struct Profile {
    name: &'static str,
    nodes: usize,
    failovers: usize,
    clients: usize,
    wallets: usize,
    think_ms: u64,
    /// Load before the first failover and after each one (once writes succeed again).
    load: Duration,
    /// The killed node rejoins as a standby before the next failover.
    rejoin: bool,
}

impl Profile {
    fn from_env() -> Profile {
        let long = std::env::var("FAILOVER_PROFILE").is_ok_and(|profile| profile == "long");
        let mut profile = if long {
            Profile {
                name: "long",
                nodes: 2,
                failovers: 6,
                clients: 8,
                wallets: 8,
                think_ms: 10,
                load: Duration::from_secs(20),
                rejoin: true,
            }
        } else {
            Profile {
                name: "short",
                nodes: 2,
                failovers: 1,
                clients: 6,
                wallets: 6,
                think_ms: 5,
                load: Duration::from_secs(4),
                rejoin: false,
            }
        };
        if let Some(failovers) = env_number("FAILOVER_COUNT") {
            profile.failovers = failovers.max(1) as usize;
            profile.rejoin |= profile.failovers > 1;
        }
        if let Some(nodes) = env_number("FAILOVER_NODES") {
            profile.nodes = nodes.clamp(2, 5) as usize;
        }
        if let Some(seconds) = env_number("FAILOVER_LOAD_SECONDS") {
            profile.load = Duration::from_secs(seconds.max(1));
        }
        if let Some(clients) = env_number("FAILOVER_CLIENTS") {
            profile.clients = clients.max(1) as usize;
        }
        profile
    }
}

fn seed() -> u64 {
    match std::env::var("FAILOVER_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("FAILOVER_SEED must be a number, got {text:?}")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos() as u64),
    }
}

fn temp_root(what: &str, seed: u64) -> PathBuf {
    std::env::temp_dir().join(format!(
        "ledger-{what}-{}-{:08x}",
        std::process::id(),
        seed as u32
    ))
}

/// One failover as it happened (µs since the run started).
#[derive(Debug)]
struct Failover {
    killed: String,
    promoted: String,
    killed_us: u64,
    promoted_us: u64,
    rejoined_us: Option<u64>,
}

/// The first write answered with success whose answering attempt was sent after `since`: how
/// long after `since` its answer came.
fn first_write_sent_after(requests: &[Request], since: u64) -> Option<u64> {
    requests
        .iter()
        .filter(|request| request.kind.is_write())
        .filter_map(|request| {
            let fin = request.fin.as_ref()?;
            let last = request.attempts.last()?;
            (fin.is_success() && last.sent_us > since).then(|| fin.at_us - since)
        })
        .min()
}

/// The writes acknowledged between two instants.
fn acknowledged_between(requests: &[Request], from: u64, to: u64) -> usize {
    requests
        .iter()
        .filter(|request| request.kind.is_write())
        .filter_map(|request| request.fin.as_ref())
        .filter(|fin| fin.is_success() && fin.at_us > from && fin.at_us <= to)
        .count()
}

fn seconds(us: u64) -> String {
    format!("{:.2} s", us as f64 / 1e6)
}

#[test]
fn the_primary_s_machine_dies_under_load_and_no_acknowledged_transfer_is_lost_or_doubled() {
    if let Err(why) = formation::pg_autoctl_or_explain() {
        panic!("{why}");
    }
    let profile = Profile::from_env();
    let seed = seed();
    println!(
        "failover: profile {}, {} nodes, {} failover(s), seed {seed} (FAILOVER_SEED={seed})",
        profile.name, profile.nodes, profile.failovers
    );
    let mut rng = XorShift::new(seed);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let _context = runtime.enter();
    let start = Instant::now();
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("failover-{}-{seed}", profile.name));
    std::fs::create_dir_all(&artifacts).expect("the artifacts folder");
    let mut formation = Formation::start(
        temp_root("failover", seed),
        profile.nodes,
        seed,
        runtime.handle().clone(),
    );
    let formed_at = start.elapsed();
    let first_primary = formation.primary().expect("a primary");
    let (standby_names, sync_states) = formation.replication(first_primary);
    println!(
        "  {:>6.1} s  formation ready: primary {}, synchronous_standby_names = {standby_names}, \
         standbys {sync_states:?}",
        formed_at.as_secs_f64(),
        formation.nodes[first_primary].name
    );
    assert!(
        !standby_names.is_empty()
            && sync_states
                .iter()
                .any(|state| state == "quorum" || state == "sync"),
        "commits must wait for a standby: synchronous_standby_names = {standby_names:?}, \
         standbys {sync_states:?}"
    );

    let mut service = Service::start(
        &formation.url("read-write"),
        &formation.root,
        artifacts.join("service.log"),
        runtime.handle(),
    );
    let shared = Arc::new(Shared::new(
        start,
        seed,
        service.port,
        ADMIN_TOKEN,
        Duration::from_secs(15),
    ));
    let plan = client::SetUp {
        label: "failover",
        ledger: LEDGER,
        wallets: profile.wallets,
        batch_size: 10,
        think_ms: profile.think_ms,
    };
    let (mut requests, workload, auditor) =
        runtime.block_on(client::set_up(&shared, &plan, &mut rng));
    let workload = Arc::new(workload);
    let clients: Vec<_> = (0..profile.clients)
        .map(|index| runtime.spawn(run_client(shared.clone(), workload.clone(), index)))
        .collect();
    let stop_probe = Arc::new(AtomicBool::new(false));
    let probed = Arc::new(Mutex::new(Probed::default()));
    let prober = runtime.spawn(service::probe(
        shared.url(""),
        auditor.clone(),
        vec![
            format!("/v1/ledgers/{LEDGER}/accounts/{}", workload.world),
            format!("/v1/ledgers/{LEDGER}/journal?after_seq=0&limit=5"),
        ],
        stop_probe.clone(),
        probed.clone(),
    ));
    // A second instance of the service, in this process, reading history from the standby
    // (LEDGER_READ_DATABASE_URL: whichever node is read-only), probed the same way: its read
    // pool must follow the formation through the failovers as the primary's pools do.
    let reads_base = runtime.block_on(start_reading_instance(&formation));
    let probed_reads = Arc::new(Mutex::new(Probed::default()));
    let reads_prober = runtime.spawn(service::probe(
        reads_base.clone(),
        auditor.clone(),
        vec![
            format!("/v1/ledgers/{LEDGER}/journal?after_seq=0&limit=5"),
            format!("/v1/ledgers/{LEDGER}/proofs/inclusion?seq=2&tree_size=3"),
        ],
        stop_probe.clone(),
        probed_reads.clone(),
    ));

    // Load, then the failovers, each followed by load (how soon writes succeed again is
    // read from the history afterwards).
    std::thread::sleep(profile.load);
    let standby = (0..formation.nodes.len())
        .find(|index| *index != first_primary)
        .expect("a standby");
    let reading = poll_until(Duration::from_secs(10), || {
        formation.connections_named(standby, "ledger-reads") > 0
    });
    assert!(
        reading,
        "the reading instance has no connection to the standby {}",
        formation.nodes[standby].name
    );
    let mut failovers = Vec::new();
    let mut primary = first_primary;
    for round in 0..profile.failovers {
        // From the moment the signal was sent (not before: finding the node's processes
        // takes a few ms, and a write answered meanwhile is not one after the kill).
        let killed_at = formation.kill_node(primary);
        let killed_us = killed_at.duration_since(shared.start).as_micros() as u64;
        println!(
            "  {:>6.1} s  failover {}: SIGKILL of {} (pg_autoctl, postmaster, backends)",
            killed_us as f64 / 1e6,
            round + 1,
            formation.nodes[primary].name
        );
        let promoted = formation.wait_for_promotion(primary, Duration::from_secs(60));
        let promoted_us = shared.now_us();
        println!(
            "  {:>6.1} s  {} promoted",
            promoted_us as f64 / 1e6,
            formation.nodes[promoted].name
        );
        let mut failover = Failover {
            killed: formation.nodes[primary].name.clone(),
            promoted: formation.nodes[promoted].name.clone(),
            killed_us,
            promoted_us,
            rejoined_us: None,
        };
        if profile.rejoin {
            formation.restart_node(primary);
            formation.wait_until_rejoined(primary, Duration::from_secs(120));
            failover.rejoined_us = Some(shared.now_us());
            println!(
                "  {:>6.1} s  {} rejoined as a standby",
                shared.now_us() as f64 / 1e6,
                formation.nodes[primary].name
            );
        }
        failovers.push(failover);
        primary = promoted;
        assert!(
            service.exited().is_none(),
            "the service exited during a failover"
        );
        std::thread::sleep(profile.load);
    }
    shared.give_up_us.store(
        shared.now_us() + Duration::from_secs(60).as_micros() as u64,
        Ordering::SeqCst,
    );
    shared.stop.store(true, Ordering::SeqCst);
    stop_probe.store(true, Ordering::SeqCst);
    let load_seconds = (shared.now_us() as f64 / 1e6) - formed_at.as_secs_f64();
    for handle in clients {
        let done = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(120), handle).await })
            .expect("clients finish once the run stops")
            .expect("a client panicked");
        requests.extend(done);
    }
    runtime.block_on(prober).expect("the prober finished");
    runtime
        .block_on(reads_prober)
        .expect("the prober of the reading instance finished");

    // The checks after the storm, on the formation's current primary.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .expect("an HTTP client");
    let base = shared.url("");
    let (journal, accounts, transfers) = runtime.block_on(async {
        let journal = audit::journal(&http, &base, LEDGER, &auditor).await;
        let accounts = audit::list_all(
            &http,
            &format!("{base}/v1/ledgers/{LEDGER}/accounts"),
            &auditor,
        )
        .await;
        let transfers = audit::list_all(
            &http,
            &format!("{base}/v1/ledgers/{LEDGER}/transfers"),
            &auditor,
        )
        .await;
        (journal, accounts, transfers)
    });
    let journal = journal.expect("read the journal");
    let verdict = checker::check(
        &requests,
        &journal,
        &accounts.expect("list the accounts"),
        &transfers.expect("list the transfers"),
    );
    let primary_now = formation.primary().expect("a primary after the run");
    let invariants = runtime.block_on(audit::database_invariants(
        &formation.node_config(primary_now),
        LEDGER,
    ));
    let integrity = runtime.block_on(audit::integrity_check(
        &http,
        &base,
        LEDGER,
        &auditor,
        &format!("{seed}-integrity"),
    ));
    let export = runtime.block_on(audit::export_and_verify(
        &http, &base, LEDGER, &auditor, &artifacts,
    ));

    // Figures.
    let attempts: Vec<&history::Attempt> = requests.iter().flat_map(|r| &r.attempts).collect();
    let mut codes_5xx: BTreeMap<String, usize> = BTreeMap::new();
    for attempt in &attempts {
        if let Outcome::Response { status, code } = &attempt.outcome {
            if *status >= 500 {
                *codes_5xx
                    .entry(format!("{status} {}", code.as_deref().unwrap_or("-")))
                    .or_default() += 1;
            }
        }
    }
    let answered_500 = attempts
        .iter()
        .filter(|attempt| matches!(attempt.outcome, Outcome::Response { status: 500, .. }))
        .count();
    let timeouts = attempts
        .iter()
        .filter(|attempt| matches!(attempt.outcome, Outcome::Timeout))
        .count();
    let slowest = attempts
        .iter()
        .filter(|attempt| matches!(attempt.outcome, Outcome::Response { .. }))
        .map(|attempt| attempt.took_us)
        .max()
        .unwrap_or(0);
    let acknowledged = requests
        .iter()
        .filter(|r| r.kind.is_write() && r.fin.as_ref().is_some_and(|fin| fin.is_success()))
        .count();
    let mut probed = std::mem::take(&mut *probed.lock().expect("never poisoned"));
    let probed_reads = std::mem::take(&mut *probed_reads.lock().expect("never poisoned"));
    let http_metrics = reqwest::Client::new();
    let replica_reads = runtime.block_on(async {
        let mut counts = Vec::new();
        for outcome in ["replica", "behind", "failed"] {
            counts.push((
                outcome,
                replica_reads(&http_metrics, &reads_base, outcome).await,
            ));
        }
        counts
    });
    let mut reads_codes = BTreeMap::<String, usize>::new();
    for (status, code, _) in &probed_reads.non_200 {
        *reads_codes.entry(format!("{status} {code}")).or_default() += 1;
    }
    let reads_line = format!(
        "{} answers, slowest {:.2} s, other than 200: {reads_codes:?}, transport errors {}; \
         reads offered to a standby (this process) {replica_reads:?}",
        probed_reads.answers,
        probed_reads.slowest.as_secs_f64(),
        probed_reads.errors.len()
    );
    // The checks below hold for both instances' reads alike.
    probed.answers += probed_reads.answers;
    probed.non_200.extend(probed_reads.non_200);
    probed.errors.extend(probed_reads.errors);
    let probe_500 = probed
        .non_200
        .iter()
        .filter(|(status, _, _)| *status >= 500 && *status != 503)
        .count();
    let probe_503_without_retry_after = probed
        .non_200
        .iter()
        .filter(|(status, _, retry_after)| *status == 503 && !retry_after)
        .count();
    let mut probe_codes: BTreeMap<String, usize> = BTreeMap::new();
    for (status, code, _) in &probed.non_200 {
        *probe_codes.entry(format!("{status} {code}")).or_default() += 1;
    }

    let mut report = String::new();
    let _ = writeln!(
        report,
        "profile                       {} ({} nodes)",
        profile.name, profile.nodes
    );
    let _ = writeln!(
        report,
        "seed                          {seed} (FAILOVER_SEED={seed})"
    );
    let _ = writeln!(
        report,
        "formation ready after         {:.1} s",
        formed_at.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "load phase                    {load_seconds:.1} s, {} clients",
        profile.clients
    );
    let _ = writeln!(report, "failovers                     {}", failovers.len());
    let _ = writeln!(report, "requests sent                 {}", requests.len());
    let _ = writeln!(report, "writes acknowledged           {acknowledged}");
    let _ = writeln!(
        report,
        "lost                          {}",
        verdict.lost.len()
    );
    let _ = writeln!(
        report,
        "applied twice                 {}",
        verdict.applied_twice.len()
    );
    let _ = writeln!(
        report,
        "phantom / refused but applied {} / {}",
        verdict.phantom.len(),
        verdict.refused_but_applied.len()
    );
    let _ = writeln!(
        report,
        "unresolved                    {}",
        verdict.unresolved.len()
    );
    let _ = writeln!(
        report,
        "history violations            {}",
        verdict.violations()
    );
    let _ = writeln!(report, "invariant violations          {}", invariants.len());
    let _ = writeln!(
        report,
        "answers checked / refusals reproduced / probes  {} / {} / {}",
        verdict.answers_checked, verdict.refusals_justified, verdict.probes_checked
    );
    let _ = writeln!(
        report,
        "commits whose answer was lost (retry got the replay)  {}",
        verdict.lost_acks
    );
    let _ = writeln!(report, "5xx answers to writes         {codes_5xx:?}");
    let _ = writeln!(
        report,
        "answers 500 / timeouts        {answered_500} / {timeouts}"
    );
    let _ = writeln!(report, "slowest answer to a write     {}", seconds(slowest));
    let _ = writeln!(
        report,
        "reads probed (both instances) {} answers, slowest {:.2} s, other than 200: \
         {probe_codes:?}, transport errors {}",
        probed.answers,
        probed.slowest.as_secs_f64(),
        probed.errors.len()
    );
    let _ = writeln!(report, "reads through the standby     {reads_line}");
    let _ = writeln!(report, "journal events                {}", journal.len());
    let _ = writeln!(
        report,
        "integrity check               {}",
        match &integrity {
            Ok(run) => format!(
                "{} at seq {}, {} findings",
                run["status"],
                run["checked_seq"],
                run["findings"].as_array().map_or(0, Vec::len)
            ),
            Err(error) => error.clone(),
        }
    );
    let _ = writeln!(
        report,
        "ledger-verify on an export    {}",
        match &export {
            Ok((lines, verdict)) => format!("exit 0, {lines} lines: {verdict}"),
            Err(error) => error.clone(),
        }
    );
    let _ = writeln!(
        report,
        "\nfailovers (kill → promotion by the monitor, kill → first successful write, \
         writes acknowledged until the next failover):"
    );
    let mut until = failovers
        .iter()
        .skip(1)
        .map(|f| f.killed_us)
        .collect::<Vec<_>>();
    until.push(u64::MAX);
    let mut unavailable = Vec::new();
    for (index, (failover, next)) in failovers.iter().zip(until).enumerate() {
        let first_write = first_write_sent_after(&requests, failover.killed_us);
        unavailable.push(first_write);
        let _ = writeln!(
            report,
            "  {:>2}. {} → {}: promoted after {}, first successful write after {}{}, \
             {} writes acknowledged after",
            index + 1,
            failover.killed,
            failover.promoted,
            seconds(failover.promoted_us - failover.killed_us),
            first_write.map_or("-".into(), seconds),
            failover.rejoined_us.map_or(String::new(), |us| {
                let after = seconds(us - failover.killed_us);
                format!(", old primary a standby again after {after}")
            }),
            acknowledged_between(&requests, failover.killed_us, next)
        );
    }
    let mut findings = Vec::new();
    for (name, list) in verdict.summary() {
        for item in list.iter().take(20) {
            findings.push(format!("{name}: {item}"));
        }
    }
    findings.extend(invariants.iter().map(|item| format!("invariant: {item}")));
    if !findings.is_empty() {
        let _ = writeln!(report, "\nfindings:");
        for finding in &findings {
            let _ = writeln!(report, "  {finding}");
        }
    }
    println!("\n{report}");
    std::fs::write(artifacts.join("report.txt"), &report).expect("write the report");
    formation.copy_logs_to(&artifacts);
    println!("report and logs in {}", artifacts.display());
    drop(service);

    assert_eq!(
        verdict.violations(),
        0,
        "history violations:\n{report}\n{}",
        formation.logs()
    );
    assert!(verdict.lost.is_empty() && verdict.applied_twice.is_empty());
    assert!(invariants.is_empty(), "invariants broken:\n{report}");
    let run = integrity.unwrap_or_else(|error| panic!("integrity check: {error}\n{report}"));
    assert_eq!(run["status"], "passed", "integrity check:\n{report}");
    assert_eq!(run["findings"], json!([]), "integrity findings:\n{report}");
    export.unwrap_or_else(|error| panic!("{error}\n{report}"));
    assert_eq!(
        answered_500, 0,
        "a write was answered 500 during a failover:\n{report}"
    );
    assert_eq!(
        probe_500, 0,
        "a read was answered 5xx other than 503:\n{report}"
    );
    assert!(
        probed.errors.is_empty(),
        "a probed read got no HTTP answer:\n{report}"
    );
    assert_eq!(
        probe_503_without_retry_after, 0,
        "a 503 without Retry-After:\n{report}"
    );
    assert_eq!(
        timeouts, 0,
        "a request hung (no answer within 15 s):\n{report}"
    );
    assert!(
        unavailable.iter().all(Option::is_some),
        "writes did not succeed again after a failover:\n{report}"
    );
    assert!(verdict.applied_groups > 0 && verdict.answers_checked > 0);
    if std::env::var("FAILOVER_KEEP").map_or(true, |keep| keep != "1") {
        let _ = std::fs::remove_file(artifacts.join("export.ndjson"));
    }
}

/// An in-process instance of the service on the formation, with the standby for reads and the
/// signing key of the `ledger serve` under test; returns its base URL.
async fn start_reading_instance(formation: &Formation) -> String {
    use ledger::startup::{Application, AuditSettings, Database, ReadDatabase, Settings};
    let settings = Settings {
        listen: "127.0.0.1:0".into(),
        database: Database::Given(Box::new(
            formation.url("read-write").parse().expect("a URL"),
        )),
        pool: ledger::storage::PoolSettings {
            custom_plans: true,
            max_connections: 4,
            statement_timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
        },
        writer: ledger::writer::WriterSettings::default(),
        limits: ledger::http::state::Limits::default(),
        http_workers: 1,
        shutdown_timeout_seconds: 1,
        audit: AuditSettings {
            signing_key: ledger::signing::SigningKeySource::File(
                formation.root.join("signing-key.pem"),
            ),
            ..AuditSettings::ephemeral()
        },
        security: ledger::startup::SecuritySettings::default(),
    };
    let reads = ReadDatabase {
        config: Box::new(formation.url("read-only").parse().expect("a URL")),
        max_connections: 4,
    };
    let app = Application::build_with_reads(&settings, Some(reads))
        .await
        .expect("the instance reading from the standby");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    base
}

/// The lines of an export: every line but the manifest and its signature byte for byte, and
/// the manifest without `signed_at` (the moment of signing, the one thing two exports of the
/// same range differ in).
fn export_without_signing_time(export: &[u8]) -> (Vec<Vec<u8>>, Value) {
    let mut content = Vec::new();
    let mut manifest = Value::Null;
    for line in export
        .split(|byte| *byte == b'\n')
        .filter(|line| !line.is_empty())
    {
        let value: Value = serde_json::from_slice(line).expect("an export line is JSON");
        match value["kind"].as_str() {
            Some("manifest") => {
                manifest = value;
                manifest
                    .as_object_mut()
                    .expect("an object")
                    .remove("signed_at");
            }
            Some("signature") => {}
            _ => content.push(line.to_vec()),
        }
    }
    (content, manifest)
}

/// The counter `ledger_replica_reads_total{outcome=…}` of the process's metrics.
async fn replica_reads(http: &reqwest::Client, base: &str, outcome: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics");
    text.lines()
        .filter(|line| line.starts_with("ledger_replica_reads_total"))
        .filter(|line| line.contains(&format!("outcome=\"{outcome}\"")))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|value| value as u64)
        .sum()
}

async fn last_seq(config: &tokio_postgres::Config) -> i64 {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to a node");
    tokio::spawn(connection);
    client
        .query_opt("SELECT max(last_seq) FROM ledger_heads", &[])
        .await
        .expect("read the head")
        .and_then(|row| row.get::<_, Option<i64>>(0))
        .unwrap_or(0)
}

async fn post(http: &reqwest::Client, url: String, token: &str, key: &str, body: Value) -> Value {
    let response = http
        .post(&url)
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|error| panic!("POST {url}: {error}"));
    let status = response.status();
    let text = response.text().await.expect("a body");
    assert!(status.is_success(), "POST {url}: {status} {text}");
    serde_json::from_str(&text).expect("JSON")
}

async fn get_bytes(http: &reqwest::Client, url: String, token: &str) -> Vec<u8> {
    let response = http
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    assert_eq!(response.status(), 200, "GET {url}");
    response.bytes().await.expect("a body").to_vec()
}

#[test]
fn a_standby_s_export_equals_the_primary_s_and_what_it_has_not_replayed_comes_from_the_primary() {
    use ledger::startup::{Application, AuditSettings, Database, ReadDatabase, Settings};
    if let Err(why) = formation::pg_autoctl_or_explain() {
        panic!("{why}");
    }
    let seed = seed() ^ 0x5eed;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let _context = runtime.enter();
    let formation = Formation::start(
        temp_root("standby", seed),
        2,
        seed,
        runtime.handle().clone(),
    );
    let primary = formation.primary().expect("a primary");
    let standby = 1 - primary;
    let key = ledger::signing::generate();
    let settings = |key: &ed25519_dalek::SigningKey| Settings {
        listen: "127.0.0.1:0".into(),
        database: Database::Given(Box::new(
            formation.url("read-write").parse().expect("a URL"),
        )),
        pool: ledger::storage::PoolSettings {
            custom_plans: true,
            max_connections: 4,
            statement_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
        },
        writer: ledger::writer::WriterSettings::default(),
        limits: ledger::http::state::Limits::default(),
        http_workers: 2,
        shutdown_timeout_seconds: 1,
        audit: AuditSettings {
            signing_key: ledger::signing::SigningKeySource::InMemory(Box::new(key.clone())),
            ..AuditSettings::ephemeral()
        },
        security: ledger::startup::SecuritySettings {
            bootstrap_admin_key: Some(ADMIN_TOKEN.into()),
            ..Default::default()
        },
    };
    let reads = ReadDatabase {
        config: Box::new(formation.url("read-only").parse().expect("a URL")),
        max_connections: 4,
    };
    let (on_primary, on_standby) = runtime.block_on(async {
        let on_primary = Application::build(&settings(&key))
            .await
            .expect("the service on the primary");
        let on_standby = Application::build_with_reads(&settings(&key), Some(reads))
            .await
            .expect("the service reading from the standby");
        let bases = (
            format!("http://127.0.0.1:{}", on_primary.port()),
            format!("http://127.0.0.1:{}", on_standby.port()),
        );
        tokio::spawn(on_primary.run_until_stopped());
        tokio::spawn(on_standby.run_until_stopped());
        bases
    });
    let http = reqwest::Client::new();
    let primary_config = formation.node_config(primary);
    let standby_config = formation.node_config(standby);
    runtime.block_on(async {
        // A ledger with 1,200 transfers in atomic batches: over a thousand events, so exports
        // take several pages and the tree has stored subtrees.
        let (primary_url, standby_url) = (on_primary.as_str(), on_standby.as_str());
        let key = |role: &str| json!({"name": role, "role": role});
        let keys = format!("{primary_url}/v1/api-keys");
        let writer = post(
            &http,
            keys.clone(),
            ADMIN_TOKEN,
            "writer-key",
            key("writer"),
        )
        .await;
        let writer = writer["token"].as_str().expect("a token").to_owned();
        let auditor = post(&http, keys, ADMIN_TOKEN, "auditor-key", key("auditor")).await;
        let auditor = auditor["token"].as_str().expect("a token").to_owned();
        let ledgers = format!("{primary_url}/v1/ledgers");
        post(
            &http,
            ledgers,
            ADMIN_TOKEN,
            "ledger",
            json!({"name": "replica"}),
        )
        .await;
        let accounts = format!("{primary_url}/v1/ledgers/replica/accounts");
        let account =
            |code: &str, side: &str| json!({"code": code, "currency": "EUR", "normal_side": side});
        let world = post(
            &http,
            accounts.clone(),
            ADMIN_TOKEN,
            "world",
            account("world", "debit"),
        );
        let world = world.await;
        let wallet = post(
            &http,
            accounts,
            ADMIN_TOKEN,
            "wallet",
            account("wallet", "credit"),
        );
        let wallet = wallet.await;
        let transfer = |amount: String| {
            json!({"debit_account_id": world["id"], "credit_account_id": wallet["id"],
                   "amount": amount, "currency": "EUR"})
        };
        let batches = format!("{primary_url}/v1/ledgers/replica/transfers/batch");
        for batch in 0..12 {
            let transfers: Vec<Value> = (0..100)
                .map(|item| transfer(format!("{}.{:02}", batch + 1, item)))
                .collect();
            let body = json!({"atomic": true, "transfers": transfers});
            post(
                &http,
                batches.clone(),
                &writer,
                &format!("batch-{batch}"),
                body,
            )
            .await;
        }
        let head = last_seq(&primary_config).await;
        let caught_up = tokio::time::timeout(Duration::from_secs(30), async {
            while last_seq(&standby_config).await < head {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(caught_up.is_ok(), "the standby did not replay seq {head}");

        // The same range from both: byte for byte but the signing time.
        let export = |base: &str, range: &str| {
            get_bytes(
                &http,
                format!("{base}/v1/ledgers/replica/export?{range}"),
                &auditor,
            )
        };
        let served_before = replica_reads(&http, standby_url, "replica").await;
        for range in [
            format!("to_seq={head}"),
            format!("from_seq=700&to_seq={}", head - 5),
        ] {
            let from_standby = export(standby_url, &range).await;
            let from_primary = export(primary_url, &range).await;
            let (standby_lines, standby_manifest) = export_without_signing_time(&from_standby);
            let (primary_lines, primary_manifest) = export_without_signing_time(&from_primary);
            assert!(
                standby_lines.len() > 1000,
                "{range}: {} lines",
                standby_lines.len()
            );
            assert!(
                standby_lines == primary_lines,
                "{range}: the standby's export differs from the primary's"
            );
            assert_eq!(standby_manifest, primary_manifest, "{range}");
        }
        let served = replica_reads(&http, standby_url, "replica").await - served_before;
        // Each export: two pages of events at least, the tree's subtrees, the accounts.
        assert!(
            served >= 6,
            "the standby served {served} reads of the exports"
        );
        println!(
            "standby reads: exports of {head} and {} events identical to the primary's; \
             {served} reads served by the standby",
            head - 5 - 699
        );

        // Replay paused: what the standby lacks comes from the primary.
        let pause = "SELECT pg_wal_replay_pause()";
        formation::execute(&standby_config, pause)
            .await
            .expect("pause the standby's replay");
        let behind_before = replica_reads(&http, standby_url, "behind").await;
        let transfers = format!("{primary_url}/v1/ledgers/replica/transfers");
        post(
            &http,
            transfers,
            &writer,
            "after-pause",
            transfer("0.01".into()),
        )
        .await;
        let head_now = last_seq(&primary_config).await;
        assert!(
            last_seq(&standby_config).await < head_now,
            "the standby replayed while paused"
        );
        let journal =
            format!("{standby_url}/v1/ledgers/replica/journal?after_seq={head}&limit=100");
        let page: Value =
            serde_json::from_slice(&get_bytes(&http, journal, &auditor).await).expect("JSON");
        let seqs: Vec<i64> = page["data"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|event| event["seq"].as_i64())
            .collect();
        assert_eq!(
            seqs.last().copied(),
            Some(head_now),
            "the journal read through the standby misses the last write: {seqs:?}"
        );
        let from_standby = export(standby_url, "").await;
        let from_primary = export(primary_url, "").await;
        assert!(
            export_without_signing_time(&from_standby)
                == export_without_signing_time(&from_primary),
            "the export through a lagging standby differs"
        );
        let behind = replica_reads(&http, standby_url, "behind").await - behind_before;
        assert!(
            behind >= 2,
            "reads the standby could not serve went to the primary: {behind}"
        );
        formation::execute(&standby_config, "SELECT pg_wal_replay_resume()")
            .await
            .expect("resume the replay");
        println!(
            "standby paused: the journal page and the export up to seq {head_now} came from \
             the primary ({behind} reads)"
        );

        // A pooled connection that reaches a standby (a node demoted under it): a write fails
        // with SQLSTATE 25006, which is an outage (503 database_unavailable with Retry-After),
        // and the connection is not handed out again.
        let storage = ledger::storage::Storage::new(
            standby_config.clone(),
            ledger::storage::PoolSettings {
                custom_plans: true,
                max_connections: 1,
                statement_timeout_ms: 5_000,
                connect_timeout_ms: 2_000,
            },
            false,
        )
        .expect("a pool");
        storage.current_user().await.expect("read on the standby");
        let backends = |config: tokio_postgres::Config| async move {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            client
                .query(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'ledger'",
                    &[],
                )
                .await
                .expect("pg_stat_activity")
                .iter()
                .map(|row| row.get::<_, i32>(0))
                .collect::<Vec<i32>>()
        };
        let before = backends(standby_config.clone()).await;
        assert_eq!(before.len(), 1, "one pooled connection: {before:?}");
        let error = storage
            .register_signing_key(
                "on-a-standby",
                &[7; 32],
                ledger::domain::Timestamp::from_unix_micros(1),
            )
            .await
            .expect_err("a write on a standby fails");
        assert!(
            matches!(&error, ledger::storage::StorageError::Pool(reason)
                if reason.contains("read-only")),
            "a write on a standby is an outage, not a database error: {error:?}"
        );
        let problem = ledger::http::problem::ApiError::from(error);
        assert_eq!(problem.status.as_u16(), 503);
        assert_eq!(problem.code, "database_unavailable");
        assert_eq!(problem.retry_after_seconds, Some(1));
        storage
            .current_user()
            .await
            .expect("read on the standby again");
        let replaced = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let now = backends(standby_config.clone()).await;
                if now.len() == 1 && now != before {
                    return now;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the connection that met a standby was replaced");
        println!(
            "a write through a connection to the standby: 503 database_unavailable, \
             backend {before:?} replaced by {replaced:?}"
        );
    });
}

#[test]
fn a_settled_read_of_the_chain_head_waits_for_the_transaction_holding_it_and_then_sees_its_outcome()
{
    use ledger::embedded::{Durability, EmbeddedCluster};
    use ledger::startup::{Application, AuditSettings, Database, Settings};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let _context = runtime.enter();
    let root = temp_root("settled-head", seed());
    let cluster = EmbeddedCluster::start(&root, Durability::Throwaway).expect("a cluster");
    let _watchdog = cluster
        .remove_when_process_exits(&root)
        .expect("the cluster's watchdog");
    let database = cluster.pg_config("ledger");
    runtime.block_on(async {
        formation::execute(&cluster.pg_config("postgres"), "CREATE DATABASE ledger")
            .await
            .expect("create the database");
        let settings = Settings {
            listen: "127.0.0.1:0".into(),
            database: Database::Given(Box::new(database.clone())),
            pool: ledger::storage::PoolSettings {
                custom_plans: true,
                max_connections: 2,
                statement_timeout_ms: 10_000,
                connect_timeout_ms: 5_000,
            },
            writer: ledger::writer::WriterSettings::default(),
            limits: ledger::http::state::Limits::default(),
            http_workers: 1,
            shutdown_timeout_seconds: 1,
            audit: AuditSettings::ephemeral(),
            security: ledger::startup::SecuritySettings {
                bootstrap_admin_key: Some(ADMIN_TOKEN.into()),
                ..Default::default()
            },
        };
        let app = Application::build(&settings).await.expect("the service");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let http = reqwest::Client::new();
        post(
            &http,
            format!("{base}/v1/ledgers"),
            ADMIN_TOKEN,
            "ledger",
            json!({"name": "held"}),
        )
        .await;
        let storage =
            ledger::storage::Storage::migrate_and_connect(database.clone(), settings.pool.clone())
                .await
                .expect("storage");
        let (holder, connection) = database
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        // A transaction holding the head row, as a batch whose COMMIT is under way does.
        holder
            .batch_execute("BEGIN; SELECT 1 FROM ledger_heads FOR UPDATE")
            .await
            .expect("lock the head");
        let settled = tokio::spawn({
            let storage = storage.clone();
            async move { storage.ledger_head_settled(1).await }
        });
        let (observer, connection) = database
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let waiting = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let waiting: i64 = observer
                    .query_one(
                        "SELECT count(*) FROM pg_stat_activity \
                         WHERE wait_event_type = 'Lock' AND query LIKE '%ledger_heads%FOR UPDATE%'",
                        &[],
                    )
                    .await
                    .expect("pg_stat_activity")
                    .get(0);
                if waiting > 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            waiting.is_ok(),
            "the settled read did not wait for the lock"
        );
        assert!(
            !settled.is_finished(),
            "the settled read answered while the head was held"
        );
        holder.batch_execute("ROLLBACK").await.expect("release");
        let head = tokio::time::timeout(Duration::from_secs(10), settled)
            .await
            .expect("the settled read answers once the holder ended")
            .expect("the task")
            .expect("the head");
        assert_eq!(head.chain.seq, 1, "the genesis event only");
        assert_eq!(head, storage.ledger_head(1).await.expect("a plain read"));
    });
    let _ = cluster.stop();
}
