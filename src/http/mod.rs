//! The HTTP layer: the only code that knows JSON and actix. Handlers parse requests into domain
//! commands, hand them to the ledger's writer or read from storage, and render the outcome.

pub mod accounts;
pub mod audit;
pub mod auth;
pub mod context;
pub mod dto;
pub mod journal;
pub mod keys;
pub mod ledgers;
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
    document_refusals(&mut api);
    problems_as_problem_json(&mut api);
    api
}

/// Adds to every operation that needs a key the refusals any such operation may answer:
/// `401`, `403` and `429`, each a problem document.
fn document_refusals(api: &mut OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let refusals = [
        (
            "400",
            "`invalid_query`, `invalid_path`, `invalid_id`, `invalid_body`, `invalid_field`, `invalid_idempotency_key`: a malformed request",
        ),
        (
            "401",
            "`unauthenticated`, `invalid_api_key`: no key, an unknown or a revoked one",
        ),
        (
            "403",
            "`forbidden`, `ledger_forbidden`: the key's role or ledgers do not cover this route",
        ),
        (
            "429",
            "`rate_limited`: the key is over its rate; see `Retry-After`",
        ),
    ];
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let open = operation.security.as_ref().is_some_and(|requirements| {
                requirements
                    .iter()
                    .all(|requirement| *requirement == Default::default())
            });
            if open {
                continue;
            }
            let takes_a_key = operation
                .parameters
                .iter()
                .flatten()
                .any(|parameter| {
                    matches!(parameter, RefOr::T(parameter) if parameter.name == "Idempotency-Key")
                });
            if takes_a_key {
                let problem = ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                    .build();
                operation.responses.responses.entry("422".to_owned()).or_insert(RefOr::T(
                    ResponseBuilder::new()
                        .description("`idempotency_key_reused`: this Idempotency-Key was used for another request")
                        .content("application/problem+json", problem)
                        .build(),
                ));
            }
            if operation.request_body.is_some() {
                let problem = ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                    .build();
                operation
                    .responses
                    .responses
                    .entry("415".to_owned())
                    .or_insert(RefOr::T(
                        ResponseBuilder::new()
                            .description(
                                "`unsupported_media_type`: the body is not of the documented type",
                            )
                            .content("application/problem+json", problem)
                            .build(),
                    ));
            }
            for (status, description) in refusals {
                let problem = ContentBuilder::new()
                    .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
                    .build();
                let response = ResponseBuilder::new()
                    .description(description)
                    .content("application/problem+json", problem)
                    .build();
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert(RefOr::T(response));
            }
        }
    }
}

/// Every error response is sent as `application/problem+json`: so it is documented, whatever
/// content type a handler's annotation defaulted to.
fn problems_as_problem_json(api: &mut OpenApi) {
    use utoipa::openapi::RefOr;
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, response) in operation.responses.responses.iter_mut() {
                let is_error = status.starts_with('4') || status.starts_with('5');
                let RefOr::T(response) = response else {
                    continue;
                };
                if !is_error {
                    continue;
                }
                if let Some(content) = response.content.shift_remove("application/json") {
                    response
                        .content
                        .insert("application/problem+json".to_owned(), content);
                }
            }
        }
    }
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
    #[param(min_length = 1, max_length = 255, pattern = "^[ -~]{1,255}$")]
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
    api.info.title = "Audited ledger".into();
    api.info.version = env!("CARGO_PKG_VERSION").into();
    api.info.description = Some(description());
    api.info.license = Some(utoipa::openapi::License::new("Apache-2.0"));
    api
}

/// The API description, with both state machines rendered from the engine's own tables.
fn description() -> String {
    let mut text = String::from(
        "Double-entry ledger with a hash-chained journal. Amounts are decimal strings. \
         Errors are RFC 9457 problem documents with a stable `code`.\n\n## Transfer state machine\n\n\
         | from | action | to |\n|---|---|---|\n",
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
    text.push_str("\nAny other transition is refused with `409 invalid_state_transition`, naming `from` and `to`.\n");
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
    document_refusals(&mut api);
    problems_as_problem_json(&mut api);
    app.app_data(state)
        .app_data(web::PayloadConfig::default().limit(max_body_bytes))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api))
        .service(web::redirect("/docs", "/docs/"))
        .default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(ApiError::not_found(
                "route_not_found",
                "no such route",
            ))
        }))
        // The last wrapped runs first: request ids before authorization, so every refusal has one.
        .wrap(actix_web::middleware::from_fn(auth::middleware))
        .wrap(actix_web::middleware::from_fn(request_id::middleware))
}

fn query_error(error: QueryPayloadError, _request: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request("invalid_query", error.to_string()).into()
}

fn path_error(error: PathError, _request: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request("invalid_path", error.to_string()).into()
}
