//! The HTTP layer: the only code that knows JSON and actix. Handlers parse requests into domain
//! commands, hand them to the ledger's writer or read from storage, and render the outcome.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod codes;
pub mod context;
pub mod dto;
pub mod journal;
pub mod keys;
pub mod ledgers;
pub mod openapi;
pub mod operations;
pub mod paging;
pub mod problem;
pub mod reconciliations;
pub mod request_id;
pub mod respond;
pub mod state;
pub mod statements;
pub mod transfers;
pub mod write;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::error::{PathError, QueryPayloadError};
use actix_web::{web, App, HttpRequest};
use utoipa::openapi::OpenApi;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::domain::state_machine::{ACCOUNT_TRANSITIONS, TRANSFER_TRANSITIONS};
use problem::ApiError;
use state::AppState;

/// Every documented route. A route added here appears in the OpenAPI document.
fn routes(config: &mut utoipa_actix_web::service_config::ServiceConfig) {
    // actix tries routes in this order, one regex each: the write path first.
    config
        .service(transfers::create_transfer)
        // Before `transfers/{id}`: route templates are matched in this order, methods aside.
        .service(transfers::create_transfer_batch)
        .service(transfers::get_transfer)
        .service(transfers::list_transfers)
        .service(transfers::post_transfer)
        .service(transfers::void_transfer)
        .service(transfers::reverse_transfer)
        .service(accounts::open_account)
        .service(accounts::get_account)
        .service(accounts::list_accounts)
        .service(accounts::freeze_account)
        .service(accounts::unfreeze_account)
        .service(accounts::close_account)
        .service(ledgers::create_ledger)
        .service(ledgers::list_ledgers)
        .service(ledgers::get_ledger)
        .service(journal::journal)
        .service(audit::signing_keys)
        .service(audit::get_checkpoint)
        .service(audit::post_cosignature)
        .service(audit::inclusion_proof)
        .service(audit::consistency_proof)
        .service(audit::entries)
        .service(audit::balance)
        .service(audit::transfer_audit)
        .service(audit::export)
        .service(audit::run_integrity_check)
        .service(audit::latest_integrity_check)
        .service(statements::upload_statement)
        .service(statements::get_statement)
        .service(reconciliations::create_reconciliation)
        .service(reconciliations::get_reconciliation)
        .service(reconciliations::list_items)
        .service(reconciliations::resolve_item)
        .service(keys::create_api_key)
        .service(keys::list_api_keys)
        .service(keys::revoke_api_key)
        .service(operations::live)
        .service(operations::ready)
        .service(operations::metrics);
}

/// The OpenAPI 3.1 document, generated from the handlers.
pub fn openapi() -> OpenApi {
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(openapi_base())
        .configure(routes)
        .split_for_parts();
    openapi::finish(&mut api);
    api
}

/// The `Idempotency-Key` request header of every state-changing POST.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// 1 to 255 printable ASCII characters. Required unless the body carries a client-supplied
    /// `id`. A retry with the same key and request gets the original response with
    /// `Idempotent-Replayed: true`; the same key with another request is
    /// `422 idempotency_key_reused`.
    #[serde(rename = "Idempotency-Key")]
    #[param(
        value_type = String,
        required = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[ -~]{1,255}$"
    )]
    #[allow(dead_code)]
    idempotency_key: Option<String>,
}

/// The `Idempotency-Key` header of a state-changing POST whose body has no natural key: there
/// it is required (`400 idempotency_key_required` without it).
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct RequiredIdempotencyKeyHeader {
    /// 1 to 255 printable ASCII characters. A retry with the same key and request gets the
    /// original response with `Idempotent-Replayed: true`; the same key with another request is
    /// `422 idempotency_key_reused`.
    #[serde(rename = "Idempotency-Key")]
    #[param(min_length = 1, max_length = 255, pattern = "^[ -~]{1,255}$")]
    #[allow(dead_code)]
    idempotency_key: String,
}

fn openapi_base() -> OpenApi {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let mut api = OpenApi::default();
    let mut components = utoipa::openapi::Components::new();
    components.add_security_scheme(
        "api_key",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An API key: Authorization: Bearer <token>"))
                .build(),
        ),
    );
    api.components = Some(components);
    api.security = Some(vec![SecurityRequirement::new(
        "api_key",
        Vec::<String>::new(),
    )]);
    api.tags = Some(
        [
            (
                "transfers",
                "Transfers: posted at once or pending (two-phase), batches, reversals",
            ),
            ("accounts", "Accounts, their balances and their lifecycle"),
            ("ledgers", "Ledgers and their custom assets"),
            ("journal", "The hash-chained journal (auditor)"),
            (
                "audit",
                "Checkpoints, proofs, entries, balances as of a seq, exports, integrity checks",
            ),
            (
                "reconciliation",
                "Bank statements, reconciliation runs and their items",
            ),
            ("api-keys", "API keys and their roles (admin)"),
            ("operations", "Health and metrics, open to everyone"),
        ]
        .map(|(name, description)| {
            let mut tag = utoipa::openapi::tag::Tag::new(name);
            tag.description = Some(description.into());
            tag
        })
        .to_vec(),
    );
    api.info.title = "Audited ledger".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(description());
    let mut license = utoipa::openapi::License::new("Apache-2.0");
    license.identifier = Some("Apache-2.0".into());
    api.info.license = Some(license);
    // Relative first: Swagger UI and tools reading `/openapi.json` call the service that served it.
    let server = |url: &str, description: &str| {
        let mut server = utoipa::openapi::Server::new(url);
        server.description = Some(description.into());
        server
    };
    api.servers = Some(vec![
        server("/", "The service that serves this document"),
        server(
            "http://127.0.0.1:8080",
            "`ledger serve` on its default address (`LEDGER_LISTEN`)",
        ),
    ]);
    api
}

/// The API description, with both state machines rendered from the engine's own tables.
fn description() -> String {
    let mut text = String::from(
        "Double-entry ledger with a hash-chained journal. Amounts are decimal strings. Errors are \
         RFC 9457 problem documents with a stable `code`.\n\n## Transfer state machine\n\n| from \
         | action | to |\n|---|---|---|\n",
    );
    for transition in TRANSFER_TRANSITIONS {
        text.push_str(&format!(
            "| {} | {} | {} |\n",
            transition.from.as_str(),
            transition.action.as_str(),
            transition.to.as_str()
        ));
    }
    text.push_str("\n## Account state machine\n\n| from | action | to |\n|---|---|---|\n");
    for transition in ACCOUNT_TRANSITIONS {
        text.push_str(&format!(
            "| {} | {} | {} |\n",
            transition.from.as_str(),
            transition.action.as_str(),
            transition.to.as_str()
        ));
    }
    text.push_str(
        "\nAny other transition is refused with `409 invalid_state_transition`, naming `from` and \
         `to`.\n",
    );
    text
}

pub fn build_app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let max_body_bytes = state.limits.max_body_bytes;
    let (app, mut api) = App::new()
        .into_utoipa_app()
        .openapi(openapi_base())
        .configure(routes)
        .split_for_parts();
    openapi::finish(&mut api);
    app.app_data(state)
        .app_data(web::PayloadConfig::default().limit(max_body_bytes))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api))
        .service(web::redirect("/docs", "/docs/"))
        .default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(ApiError::new(
                codes::ROUTE_NOT_FOUND,
                "no such route",
            ))
        }))
        // The last wrapped runs first: request ids before authorization, so every refusal has one.
        .wrap(actix_web::middleware::from_fn(auth::middleware))
        .wrap(actix_web::middleware::from_fn(request_id::middleware))
}

fn query_error(error: QueryPayloadError, _request: &HttpRequest) -> actix_web::Error {
    ApiError::new(codes::INVALID_QUERY, error.to_string()).into()
}

fn path_error(error: PathError, _request: &HttpRequest) -> actix_web::Error {
    ApiError::new(codes::INVALID_PATH, error.to_string()).into()
}
