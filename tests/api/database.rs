//! What the database itself guarantees, whatever the code does (§4.6).

use serde_json::json;

use crate::helpers::{owner_connection, spawn_app};

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_journal_events_and_postings() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let a = app.open_account("main", "a", json!({})).await;
    let b = app.open_account("main", "b", json!({})).await;
    app.transfer("main", a, b, "1.00").await;
    let owner = owner_connection(&app.database).await;
    for statement in [
        "UPDATE journal SET actor = 'mallory'",
        "DELETE FROM journal WHERE seq = 4",
        "TRUNCATE journal",
        "UPDATE postings SET posted_delta = 100",
        "DELETE FROM postings",
        "TRUNCATE postings",
    ] {
        let error = owner.batch_execute(statement).await.expect_err(statement);
        assert!(
            error.to_string().contains("append-only")
                || format!("{error:?}").contains("append-only"),
            "{statement}: {error:?}"
        );
    }
    let events: i64 = owner
        .query_one("SELECT count(*) FROM journal", &[])
        .await
        .unwrap()
        .get(0);
    let postings: i64 = owner
        .query_one("SELECT count(*) FROM postings", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((events, postings), (4, 2));
}

#[tokio::test]
async fn the_service_role_may_append_history_but_neither_change_it_nor_disable_the_guard() {
    let app = spawn_app().await;
    app.create_ledger("main").await;
    let owner = owner_connection(&app.database).await;
    owner
        .batch_execute("SET ROLE ledger_service")
        .await
        .unwrap();
    for statement in [
        "ALTER TABLE journal DISABLE TRIGGER ALL",
        "UPDATE journal SET actor = 'x'",
        "DELETE FROM journal",
        "TRUNCATE postings",
        "DROP TABLE journal",
    ] {
        assert!(
            owner.batch_execute(statement).await.is_err(),
            "{statement} must fail as ledger_service"
        );
    }
    let role: String = owner
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "ledger_service");
}

#[tokio::test]
async fn the_service_connects_as_the_restricted_role_when_the_database_has_it() {
    let app = spawn_app().await;
    let settings = ledger::storage::PoolSettings {
        custom_plans: true,
        max_connections: 1,
        statement_timeout_ms: 1000,
        connect_timeout_ms: 1000,
    };
    let storage = ledger::storage::Storage::migrate_and_connect(app.database.clone(), settings)
        .await
        .unwrap();
    assert_eq!(storage.current_user().await.unwrap(), "ledger_service");
    assert!(
        storage.is_ready().await,
        "the service role can read what readiness needs"
    );
}

/// Connects to the cluster's `postgres` database and runs `sql`, returning the first column of
/// the first row as text.
async fn query_text(cluster: &ledger::embedded::EmbeddedCluster, sql: &str) -> String {
    let (client, connection) = cluster
        .pg_config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect to the embedded cluster");
    tokio::spawn(connection);
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn the_embedded_cluster_starts_in_an_awkward_folder_is_reused_and_stops_when_dropped() {
    use ledger::embedded::{Durability, EmbeddedCluster};
    use std::os::unix::fs::PermissionsExt;
    let root = std::env::temp_dir().join(format!(
        "ledger embedded 'quoted' {}",
        uuid::Uuid::new_v4().simple()
    ));
    let pid_file = root.join("pg").join("postmaster.pid");
    let start = |root: std::path::PathBuf| {
        std::thread::spawn(move || EmbeddedCluster::start(&root, Durability::Throwaway))
            .join()
            .unwrap()
            .expect("the cluster starts")
    };
    let cluster = start(root.clone());
    let mode = std::fs::metadata(&root).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o700,
        "the folder of a trust-authenticated socket is private"
    );
    query_text(&cluster, "SELECT 1::text").await;
    let (client, connection) = cluster
        .pg_config("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE survives_restarts (id int)")
        .await
        .unwrap();
    drop(client);
    cluster.stop().unwrap();
    assert!(!pid_file.exists(), "stopped");

    let again = start(root.clone());
    assert_eq!(
        query_text(&again, "SELECT to_regclass('survives_restarts')::text").await,
        "survives_restarts",
        "the second start reuses the cluster"
    );
    std::thread::spawn(move || drop(again)).join().unwrap();
    assert!(
        !pid_file.exists(),
        "dropping a cluster this process started stops it"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn a_restart_after_a_killed_initdb_a_crash_or_a_power_cut_succeeds_the_first_time() {
    use ledger::embedded::{Durability, EmbeddedCluster};
    let root =
        std::env::temp_dir().join(format!("ledger-restarts-{}", uuid::Uuid::new_v4().simple()));
    let start = |root: std::path::PathBuf| {
        std::thread::spawn(move || EmbeddedCluster::start(&root, Durability::Throwaway))
            .join()
            .unwrap()
            .expect("the cluster starts the first time")
    };
    let pid_file = root.join("pg").join("postmaster.pid");

    // A first start killed during initdb left a partial folder behind.
    std::fs::create_dir_all(root.join("pg.initializing")).unwrap();
    std::fs::write(root.join("pg.initializing").join("PG_VERSION"), "15\n").unwrap();
    let cluster = start(root.clone());
    assert_eq!(
        query_text(&cluster, "SELECT current_database()::text").await,
        "postgres"
    );
    assert!(
        !root.join("pg.initializing").exists(),
        "initialised, then renamed into place"
    );

    // The owner was killed: the server runs on, unowned. The next start adopts it…
    cluster.abandon();
    assert!(
        pid_file.exists(),
        "a killed owner leaves the server running"
    );
    let adopted = start(root.clone());
    // …and a second process on the folder uses it without owning it.
    let other = start(root.clone());
    std::thread::spawn(move || drop(other)).join().unwrap();
    assert!(
        pid_file.exists(),
        "a process that does not own the cluster leaves it running"
    );
    std::thread::spawn(move || drop(adopted)).join().unwrap();
    assert!(
        !pid_file.exists(),
        "the owner that adopted the cluster stops it"
    );

    // A power cut: postmaster.pid remains, naming a pid that is now some other process.
    std::fs::write(
        &pid_file,
        format!("{}\n{}\n", std::process::id(), root.join("pg").display()),
    )
    .unwrap();
    let after_power_cut = start(root.clone());
    assert_eq!(
        query_text(&after_power_cut, "SELECT 'up'::text").await,
        "up"
    );
    std::thread::spawn(move || drop(after_power_cut))
        .join()
        .unwrap();

    // A killed postmaster nobody reaped: a zombie still named `postgres`, not a server.
    let impostor = root.join("postgres");
    std::fs::copy("/bin/sleep", &impostor).unwrap();
    let mut zombie = std::process::Command::new(&impostor)
        .arg("600")
        .spawn()
        .unwrap();
    zombie.kill().unwrap();
    // Wait for it to die without reaping it (WNOWAIT): it stays a zombie.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes into `info`, which lives across the call.
    let waited = unsafe {
        libc::waitid(
            libc::P_PID,
            zombie.id(),
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(waited, 0, "waitid");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", zombie.id())).unwrap();
    assert!(stat.contains(") Z"), "killed and not yet reaped: {stat}");
    std::fs::write(
        &pid_file,
        format!("{}\n{}\n", zombie.id(), root.join("pg").display()),
    )
    .unwrap();
    let after_zombie = start(root.clone());
    assert_eq!(query_text(&after_zombie, "SELECT 'up'::text").await, "up");
    std::thread::spawn(move || drop(after_zombie))
        .join()
        .unwrap();
    zombie.wait().unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}
