//! Replicas starting together on an empty database: their migrations run one at a time (an
//! advisory lock in `Storage::migrate`), so every one of them comes up. And the compose stack's
//! roles: a login role that is no superuser migrates, and the service then runs as
//! `ledger_service`.

use std::os::unix::fs::PermissionsExt;

use ledger::embedded::{Durability, EmbeddedCluster};
use ledger::storage::{create_database_if_missing, PoolSettings, Storage};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_all_migrate_and_a_plain_login_role_runs_as_the_service() {
    let root = tempfile::Builder::new()
        .prefix("ledger-migration-lock-")
        .tempdir()
        .expect("a temporary folder");
    // The embedded cluster runs as the postgres user when the tests run as root.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let dir = root.path().join("cluster");
    let cluster = tokio::task::spawn_blocking(move || {
        EmbeddedCluster::start(&dir, Durability::Throwaway).expect("a throwaway cluster")
    })
    .await
    .expect("the start task");
    let settings = PoolSettings {
        max_connections: 2,
        custom_plans: true,
        statement_timeout_ms: 30_000,
        connect_timeout_ms: 10_000,
    };
    for round in 0..3 {
        let name = format!("empty_{round}");
        create_database_if_missing(&cluster.pg_config("postgres"), &name)
            .await
            .expect("an empty database");
        let instances = (0..4).map(|_| {
            let config = cluster.pg_config(&name);
            let settings = settings.clone();
            tokio::spawn(async move { Storage::migrate_and_connect(config, settings).await })
        });
        for (index, instance) in instances.collect::<Vec<_>>().into_iter().enumerate() {
            let storage = instance
                .await
                .expect("the instance's task")
                .unwrap_or_else(|error| panic!("instance {index} of round {round}: {error}"));
            assert!(
                storage.is_ready().await,
                "instance {index} sees every migration"
            );
        }
    }

    // docker/postgres-init/10-ledger-role.sh, as the postgres image runs it on a first start.
    let admin = cluster.pg_config("postgres");
    let Some(tokio_postgres::config::Host::Unix(socket)) = admin.get_hosts().first().cloned()
    else {
        panic!("the embedded cluster listens on a unix socket");
    };
    let password = root.path().join("ledger_db_password");
    std::fs::write(&password, "not-used-over-the-socket\n").expect("the password file");
    let init = std::process::Command::new("sh")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docker/postgres-init/10-ledger-role.sh"
        ))
        .env("POSTGRES_USER", admin.get_user().expect("a user"))
        .env("PGHOST", &socket)
        .env("PGPORT", admin.get_ports()[0].to_string())
        .env("LEDGER_DB_PASSWORD_FILE", &password)
        .output()
        .expect("run the init script (psql)");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let mut config = cluster.pg_config("ledger");
    config.user("ledger");
    let storage = Storage::migrate_and_connect(config, settings)
        .await
        .expect("the login role `ledger` migrates its database");
    assert!(storage.is_ready().await);
    assert_eq!(
        storage.current_user().await.expect("current_user"),
        "ledger_service"
    );

    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .expect("the stop task")
        .expect("stop the cluster");
}
