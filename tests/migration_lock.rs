//! Replicas starting together on an empty database: their migrations run one at a time (an
//! advisory lock in `Storage::migrate`), so every one of them comes up.

use std::os::unix::fs::PermissionsExt;

use ledger::embedded::{Durability, EmbeddedCluster};
use ledger::storage::{create_database_if_missing, PoolSettings, Storage};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_migrating_one_empty_database_at_once_all_come_up() {
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
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .expect("the stop task")
        .expect("stop the cluster");
}
