//! Health and metrics: open to everyone (§9).

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    #[schema(value_type = HealthStatus, example = "ok")]
    pub status: &'static str,
}

/// `ok`, or `unavailable` (with `503`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

/// The process is up.
#[utoipa::path(tag = "operations", security(()), responses((status = 200, body = HealthBody)))]
#[get("/health/live")]
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(HealthBody { status: "ok" })
}

/// The database answers and its migrations are current.
#[utoipa::path(
    tag = "operations",
    security(()),
    responses((status = 200, body = HealthBody), (status = 503, body = HealthBody))
)]
#[get("/health/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    if state.health.is_ready().await {
        HttpResponse::Ok().json(HealthBody { status: "ok" })
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(HealthBody {
                status: "unavailable",
            })
    }
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    tag = "operations",
    security(()),
    responses((status = 200, content_type = "text/plain", body = String))
)]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    record_pool_gauges("requests", state.storage.pool_connections());
    record_pool_gauges("writers", state.writers.pool_connections());
    let body = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

/// `ledger_db_pool_connections{pool, state}`: read when scraped, so always current.
fn record_pool_gauges(pool: &'static str, connections: crate::storage::PoolConnections) {
    let states = [
        ("in_use", connections.in_use),
        ("idle", connections.idle),
        ("waiting", connections.waiting),
        ("max", connections.max),
    ];
    for (state, count) in states {
        ::metrics::gauge!("ledger_db_pool_connections", "pool" => pool, "state" => state)
            .set(count as f64);
    }
}
