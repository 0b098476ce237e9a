//! What the handlers' annotations cannot say, added to the generated OpenAPI document in one
//! place: the refusals every authenticated route may answer, problem documents as
//! `application/problem+json`, the catalogue of error codes in `Problem.code`, the response
//! headers, optional bodies that are absent rather than `null`, page items by reference, and the
//! schemas of the enumerated strings.
//!
//! `openapi/openapi.json` is this document (`cargo run -- openapi`); `tests/openapi_tools.rs`
//! runs openapi-spec-validator and `redocly lint` on it, `tests/clients.rs` generates clients.

use std::borrow::Cow;

use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{
    path::Operation, Content, ContentBuilder, Header, HeaderBuilder, OpenApi, Ref, RefOr, Required,
    ResponseBuilder,
};

use super::codes::{self, ErrorCode};
use crate::domain::reconciliation::{ItemStatus, ResolutionAction};
use crate::domain::state_machine::{AccountAction, AccountStatus, TransferAction, TransferState};
use crate::statement::StatementFormat;

/// Completes the generated document (both the served and the committed copy).
pub fn finish(api: &mut OpenApi) {
    document_refusals(api);
    document_codes(api);
    problems_as_problem_json(api);
    describe_every_response(api);
    absent_rather_than_null_bodies(api);
    document_headers(api);
    page_items_by_reference(api);
}

fn operations_mut(api: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    api.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

fn problem_content() -> Content {
    ContentBuilder::new()
        .schema(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
        .build()
}

fn takes_an_idempotency_key(operation: &Operation) -> bool {
    operation.parameters.iter().flatten().any(
        |parameter| matches!(parameter, RefOr::T(parameter) if parameter.name == "Idempotency-Key"),
    )
}

/// Adds to every operation that needs a key the refusals any such operation may answer:
/// `400`, `401`, `403` and `429` (and `415` with a body, `422` with an Idempotency-Key), each a
/// problem document.
fn document_refusals(api: &mut OpenApi) {
    let refusals = [
        (
            "400",
            listed(
                &[
                    codes::INVALID_QUERY,
                    codes::INVALID_PATH,
                    codes::INVALID_ID,
                    codes::INVALID_BODY,
                    codes::INVALID_FIELD,
                    codes::INVALID_IDEMPOTENCY_KEY,
                ],
                "a malformed request",
            ),
        ),
        (
            "401",
            listed(
                &[codes::UNAUTHENTICATED, codes::INVALID_API_KEY],
                "no key, an unknown or a revoked one",
            ),
        ),
        (
            "403",
            listed(
                &[codes::FORBIDDEN, codes::LEDGER_FORBIDDEN],
                "the key's role or ledgers do not cover this route",
            ),
        ),
        (
            "429",
            listed(
                &[codes::RATE_LIMITED],
                "the key is over its rate; see `Retry-After`",
            ),
        ),
    ];
    for operation in operations_mut(api) {
        let open = operation.security.as_ref().is_some_and(|requirements| {
            requirements
                .iter()
                .all(|requirement| *requirement == Default::default())
        });
        if open {
            continue;
        }
        let (keyed, has_body) = (
            takes_an_idempotency_key(operation),
            operation.request_body.is_some(),
        );
        let mut add = |status: &str, description: &str| {
            operation
                .responses
                .responses
                .entry(status.to_owned())
                .or_insert(RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content("application/problem+json", problem_content())
                        .build(),
                ));
        };
        if keyed {
            add(
                "422",
                &listed(
                    &[codes::IDEMPOTENCY_KEY_REUSED],
                    "this Idempotency-Key was used for another request",
                ),
            );
        }
        if has_body {
            add(
                "415",
                &listed(
                    &[codes::UNSUPPORTED_MEDIA_TYPE],
                    "the body is not of the documented type",
                ),
            );
        }
        for (status, description) in &refusals {
            add(status, description);
        }
    }
}

/// "`code`, `code`: why" — a response description naming catalogue codes.
fn listed(codes: &[ErrorCode], why: &str) -> String {
    let names: Vec<String> = codes
        .iter()
        .map(|code| format!("`{}`", code.code))
        .collect();
    format!("{}: {why}", names.join(", "))
}

/// The `code` member of `Problem` lists the catalogue: every code, its status, its meaning.
fn document_codes(api: &mut OpenApi) {
    let Some(components) = api.components.as_mut() else {
        return;
    };
    let Some(RefOr::T(Schema::Object(problem))) = components.schemas.get_mut("Problem") else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(code))) = problem.properties.get_mut("code") {
        code.description = Some(codes::openapi_description());
    }
}

/// Every error response is sent as `application/problem+json`: so it is documented, whatever
/// content type a handler's annotation defaulted to. (An error answered with another body,
/// like the readiness probe's `503`, keeps its own content type.)
fn problems_as_problem_json(api: &mut OpenApi) {
    let problem = RefOr::Ref(Ref::from_schema_name("Problem"));
    for operation in operations_mut(api) {
        for (status, response) in operation.responses.responses.iter_mut() {
            let is_error = status.starts_with('4') || status.starts_with('5');
            let RefOr::T(response) = response else {
                continue;
            };
            if !is_error {
                continue;
            }
            let is_problem = response
                .content
                .get("application/json")
                .is_some_and(|content| {
                    matches!(
                        content,
                        RefOr::T(content) if content.schema.as_ref() == Some(&problem)
                    )
                });
            if is_problem {
                if let Some(content) = response.content.shift_remove("application/json") {
                    response
                        .content
                        .insert("application/problem+json".to_owned(), content);
                }
            }
        }
    }
}

/// A response object must have a description: where an annotation gave none, the status's
/// meaning for this service.
fn describe_every_response(api: &mut OpenApi) {
    for operation in operations_mut(api) {
        for (status, response) in operation.responses.responses.iter_mut() {
            let RefOr::T(response) = response else {
                continue;
            };
            if !response.description.is_empty() {
                continue;
            }
            response.description = match status.as_str() {
                "200" => "OK",
                "201" => "Created",
                "400" => {
                    "A malformed request (`invalid_query`, `invalid_path`, `invalid_id`, \
                     `invalid_field`, `invalid_cursor`, `invalid_limit`, `out_of_range`, …)"
                }
                "404" => "`ledger_not_found`, or the named resource does not exist (`*_not_found`)",
                "409" => "A conflict with the current state",
                "422" => "A well-formed request that a ledger rule refuses",
                "503" => "Unavailable for now; retry (see `Retry-After`)",
                _ => "See the problem document's `code`",
            }
            .to_owned();
        }
    }
}

/// utoipa documents an optional body (`Option<T>`) as `oneOf: [T, null]`, yet the service takes
/// no body or a `T`, never `null`; and generated clients cannot send "no body" for such a
/// schema. So: the schema is `T`, and the body is not required.
fn absent_rather_than_null_bodies(api: &mut OpenApi) {
    for operation in operations_mut(api) {
        let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
            continue;
        };
        let mut optional = false;
        for content in body.content.values_mut() {
            let RefOr::T(content) = content else {
                continue;
            };
            let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
                continue;
            };
            let is_null = |schema: &RefOr<Schema>| {
                matches!(schema, RefOr::T(Schema::Object(object))
                    if object.schema_type == SchemaType::Type(Type::Null))
            };
            if one_of.items.len() != 2 || !one_of.items.iter().any(is_null) {
                continue;
            }
            let inner = one_of.items.iter().find(|schema| !is_null(schema)).cloned();
            content.schema = inner;
            optional = true;
        }
        if optional {
            body.required = Some(Required::False);
        }
    }
}

const REQUEST_ID: &str = "X-Request-Id";
const REPLAYED: &str = "Idempotent-Replayed";
const RETRY_AFTER: &str = "Retry-After";
const LOCATION: &str = "Location";

/// utoipa's `Header` has no `required` member: it is added as an extension, which serializes
/// into the header object as is.
fn required(mut header: Header) -> Header {
    header
        .extensions
        .get_or_insert_with(Default::default)
        .insert("required".to_owned(), serde_json::Value::Bool(true));
    header
}

fn string_header(description: &str, pattern: Option<&str>) -> Header {
    let mut schema = ObjectBuilder::new().schema_type(Type::String);
    if let Some(pattern) = pattern {
        schema = schema.pattern(Some(pattern));
    }
    HeaderBuilder::new()
        .schema(Some(schema.build()))
        .description(Some(description))
        .build()
}

/// The response headers, declared once under `components/headers` and referenced by every
/// response that carries them: `X-Request-Id` on all, `Location` on what creates a resource
/// with an address, `Idempotent-Replayed` on what an Idempotency-Key may replay, `Retry-After`
/// on `429` and `503`.
fn document_headers(api: &mut OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    components.headers.insert(
        REQUEST_ID.to_owned(),
        RefOr::T(required(string_header(
            "The request's id: the client's `X-Request-Id` when it sent a well-formed one (1 to \
             128 visible ASCII characters), else a generated UUID. Problem documents carry it as \
             `request_id`.",
            Some("^[!-~]{1,128}$"),
        ))),
    );
    components.headers.insert(
        REPLAYED.to_owned(),
        RefOr::T(
            HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some(["true"])),
                ))
                .description(Some(
                    "`true` when this is the recorded response to an earlier request with the \
                     same Idempotency-Key (byte for byte); absent otherwise.",
                ))
                .build(),
        ),
    );
    components.headers.insert(
        RETRY_AFTER.to_owned(),
        RefOr::T(string_header(
            "Seconds to wait before retrying.",
            Some("^[0-9]+$"),
        )),
    );
    components.headers.insert(
        LOCATION.to_owned(),
        RefOr::T(required(string_header(
            "The path of the created resource.",
            Some("^/"),
        ))),
    );
    let header = |name: &str| RefOr::Ref(Ref::new(format!("#/components/headers/{name}")));
    for (path, item) in api.paths.paths.iter_mut() {
        // The routes whose `201` names the created resource (`Location`); the others (batches,
        // cosignatures, integrity runs) create nothing with an address of its own.
        let created_has_location = matches!(
            path.as_str(),
            "/v1/ledgers"
                | "/v1/ledgers/{ledger}/accounts"
                | "/v1/ledgers/{ledger}/transfers"
                | "/v1/ledgers/{ledger}/transfers/{id}/reverse"
                | "/v1/ledgers/{ledger}/statements"
                | "/v1/ledgers/{ledger}/reconciliations"
                | "/v1/api-keys"
        );
        let operations = [
            (&mut item.get, false),
            (&mut item.post, true),
            (&mut item.put, false),
            (&mut item.delete, false),
            (&mut item.patch, false),
        ];
        for (operation, is_post) in operations {
            let Some(operation) = operation else {
                continue;
            };
            let replayable = takes_an_idempotency_key(operation);
            for (status, response) in operation.responses.responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                let headers = &mut response.headers;
                headers.insert(REQUEST_ID.to_owned(), header(REQUEST_ID));
                if status == "201" && is_post && created_has_location {
                    headers.insert(LOCATION.to_owned(), header(LOCATION));
                }
                // What the writer decided is recorded and replayed: results and refusals.
                let recorded =
                    status.starts_with('2') || matches!(status.as_str(), "404" | "409" | "422");
                if replayable && recorded {
                    headers.insert(REPLAYED.to_owned(), header(REPLAYED));
                }
                if status == "429" {
                    headers.insert(
                        RETRY_AFTER.to_owned(),
                        RefOr::T(required(string_header(
                            "Seconds until the key may send again.",
                            Some("^[0-9]+$"),
                        ))),
                    );
                }
                if status == "503" {
                    headers.insert(RETRY_AFTER.to_owned(), header(RETRY_AFTER));
                }
            }
        }
    }
}

/// utoipa inlines a generic's argument: `PageBody<AccountBody>` would list its `data` as an
/// anonymous copy of `AccountBody`, which generated clients name `PageBodyAccountBodyDataItem`.
/// Each page's items refer to their own schema instead.
fn page_items_by_reference(api: &mut OpenApi) {
    let Some(components) = api.components.as_mut() else {
        return;
    };
    let names: Vec<String> = components.schemas.keys().cloned().collect();
    for name in names {
        let Some(item) = name.strip_prefix("PageBody_") else {
            continue;
        };
        if !components.schemas.contains_key(item) {
            continue;
        }
        let Some(RefOr::T(Schema::Object(page))) = components.schemas.get_mut(&name) else {
            continue;
        };
        if let Some(RefOr::T(Schema::Array(data))) = page.properties.get_mut("data") {
            data.items = ArrayItems::RefOrSchema(Box::new(RefOr::Ref(Ref::from_schema_name(item))));
        }
    }
}

/// A schema-only string enumeration, its values taken from the domain's own list, for a field
/// the API sends as a string.
macro_rules! string_enum_schema {
    ($(#[doc = $doc:literal])+ $name:ident => $schema_name:literal, $values:expr) => {
        $(#[doc = $doc])+
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let values: Vec<&'static str> = $values;
                let description = [$($doc),+].map(str::trim).join(" ");
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(description))
                    .enum_values(Some(values))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($schema_name)
            }
        }
    };
}

string_enum_schema!(
    /// An account's status (§3): `active → frozen → active`; `active | frozen → closed`.
    AccountStatusSchema => "AccountStatus",
    AccountStatus::ALL.iter().map(AccountStatus::as_str).collect()
);

string_enum_schema!(
    /// A transfer's state (§3): `pending → posted | voided | expired`.
    TransferStateSchema => "TransferState",
    TransferState::ALL.iter().map(TransferState::as_str).collect()
);

string_enum_schema!(
    /// A reconciliation run's state: `running → completed | failed`.
    ReconciliationStateSchema => "ReconciliationState",
    // The `reconciliation_runs.state` check constraint (migrations/V6__reconciliation.sql).
    vec!["running", "completed", "failed"]
);

string_enum_schema!(
    /// What a reconciliation run decided about an item.
    ItemStatusSchema => "ItemStatus",
    ItemStatus::ALL.iter().map(|status| status.as_str()).collect()
);

string_enum_schema!(
    /// What was decided about a reconciliation item (`undo` takes a decision back).
    ResolutionActionSchema => "ResolutionAction",
    ResolutionAction::ALL.iter().map(|action| action.as_str()).collect()
);

string_enum_schema!(
    /// An integrity check's status: `running → passed | failed`.
    IntegrityStatusSchema => "IntegrityStatus",
    // The `integrity_checks.status` check constraint (migrations/V3__merkle_checkpoints_keys.sql).
    vec!["running", "passed", "failed"]
);

string_enum_schema!(
    /// The format of a stored statement.
    StatementFormatSchema => "StatementFormat",
    StatementFormat::ALL.iter().map(|format| format.as_str()).collect()
);

string_enum_schema!(
    /// A state of either state machine: an account status or a transfer state.
    TransitionStateSchema => "TransitionState",
    AccountStatus::ALL
        .iter()
        .map(AccountStatus::as_str)
        .chain(TransferState::ALL.iter().map(TransferState::as_str))
        .collect()
);

string_enum_schema!(
    /// An action of either state machine.
    TransitionActionSchema => "TransitionAction",
    AccountAction::ALL
        .iter()
        .map(AccountAction::as_str)
        .chain(TransferAction::ALL.iter().map(TransferAction::as_str))
        .collect()
);

#[cfg(test)]
mod tests {
    use std::path::Path;

    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;

    fn rust_sources(folder: &Path, sources: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(folder).expect("read src") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                rust_sources(&path, sources);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                sources.push((path.display().to_string(), text));
            }
        }
    }

    /// The string literals that follow `marker` in `text` (whitespace ignored).
    fn literals_after<'a>(text: &'a str, marker: &'a str) -> impl Iterator<Item = String> + 'a {
        text.match_indices(marker).filter_map(move |(at, _)| {
            let rest = &text[at + marker.len()..];
            rest.find('"').map(|end| rest[..end].to_owned())
        })
    }

    /// A code named in an error response's description is a code of the catalogue answered
    /// with that response's status (codes named as an atomic batch item's are the item's own).
    #[test]
    fn every_code_a_response_names_is_catalogued_with_that_status() {
        let document = serde_json::to_value(crate::http::openapi()).expect("the document");
        let mut wrong = Vec::new();
        let mut named = 0;
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                let Some(responses) = operation["responses"].as_object() else {
                    continue;
                };
                for (status, response) in responses {
                    if !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    let description = response["description"].as_str().unwrap_or("");
                    for word in description.split('`').skip(1).step_by(2) {
                        let Some(entry) = crate::http::codes::find(word) else {
                            continue;
                        };
                        named += 1;
                        if entry.status.as_str() != status {
                            wrong.push(format!(
                                "{method} {path} {status}: `{word}` is {}",
                                entry.status.as_u16()
                            ));
                        }
                    }
                }
            }
        }
        assert!(named > 100, "the scan finds the codes ({named})");
        assert!(
            wrong.is_empty(),
            "codes documented under another status: {wrong:#?}"
        );
    }

    /// The `code` member of the Problem schema lists every code of the catalogue.
    #[test]
    fn the_problem_code_member_lists_the_catalogue() {
        let document = serde_json::to_value(crate::http::openapi()).expect("the document");
        let description = document["components"]["schemas"]["Problem"]["properties"]["code"]
            ["description"]
            .as_str()
            .expect("Problem.code has a description");
        for entry in crate::http::codes::CATALOGUE {
            let line = format!("`{}` ({})", entry.code, entry.status.as_u16());
            assert!(description.contains(&line), "{line} is missing");
        }
    }

    /// Every extension member a problem document may carry is one the code adds with
    /// `ApiError::with("…", …)` or `extensions.insert("…", …)`: each must be a property of the
    /// `Problem` schema, so that generated clients read it.
    #[test]
    fn the_problem_schema_declares_every_extension_member_the_service_sends() {
        let RefOr::T(Schema::Object(problem)) =
            <super::super::problem::Problem as utoipa::PartialSchema>::schema()
        else {
            panic!("Problem is an object schema");
        };
        let mut sources = Vec::new();
        rust_sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut sources,
        );
        let mut found = Vec::new();
        let mut undeclared = Vec::new();
        for (path, text) in &sources {
            let text: String = text.split_whitespace().collect();
            for marker in [".with(\"", ".extensions.insert(\""] {
                for member in literals_after(&text, marker) {
                    if !problem.properties.contains_key(&member) {
                        undeclared.push(format!("{member} ({path})"));
                    }
                    found.push(member);
                }
            }
        }
        for expected in ["account_id", "from", "to", "index", "field", "errors"] {
            assert!(
                found.iter().any(|member| member == expected),
                "the scan finds `{expected}`: {found:?}"
            );
        }
        assert!(
            undeclared.is_empty(),
            "extension members missing from the Problem schema (src/http/problem.rs): \
             {undeclared:?}"
        );
    }
}
