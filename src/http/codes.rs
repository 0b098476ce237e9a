//! The catalogue of error codes: every `code` a problem document can carry, with its HTTP
//! status and what it means, in one table. `ApiError` takes its status from here (a handler
//! names a code, never a status), a refusal of the engine (`domain::Rejection`) finds its status
//! here by its code, the OpenAPI document lists the table in the `code` member of `Problem`
//! (and a test holds every code a response description names to that response's status), and
//! the README's table of error codes is generated from it (a test checks it is current).

use actix_web::http::StatusCode;

/// One error code of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode {
    /// Stable, snake_case: what clients branch on.
    pub code: &'static str,
    pub status: StatusCode,
    /// One line, for the README and the OpenAPI description.
    pub meaning: &'static str,
}

macro_rules! catalogue {
    ($($name:ident = $status:ident $code:literal $meaning:literal;)*) => {
        $(
            #[doc = $meaning]
            pub const $name: ErrorCode = ErrorCode {
                code: $code,
                status: StatusCode::$status,
                meaning: $meaning,
            };
        )*
        /// Every code, by status and then in the order of the table.
        pub const CATALOGUE: &[ErrorCode] = &[$($name),*];
    };
}

catalogue! {
    INVALID_BODY = BAD_REQUEST "invalid_body"
        "the body is not the JSON object the route takes (syntax, type, unknown or repeated field)";
    INVALID_FIELD = BAD_REQUEST "invalid_field"
        "a field of the body breaks its rule; `field` names it";
    INVALID_QUERY = BAD_REQUEST "invalid_query" "a query parameter is malformed or out of place";
    INVALID_PATH = BAD_REQUEST "invalid_path" "a path segment is malformed";
    INVALID_ID = BAD_REQUEST "invalid_id" "an id in the path or query is not a UUID";
    INVALID_CURSOR = BAD_REQUEST "invalid_cursor" "a list's cursor is not one this service issued";
    INVALID_LIMIT = BAD_REQUEST "invalid_limit" "`limit` is 0 or above the largest page";
    INVALID_IDEMPOTENCY_KEY = BAD_REQUEST "invalid_idempotency_key"
        "the Idempotency-Key is not 1 to 255 printable ASCII characters";
    IDEMPOTENCY_KEY_REQUIRED = BAD_REQUEST "idempotency_key_required"
        "this write needs an Idempotency-Key (or a client-supplied `id`)";
    BATCH_TOO_LARGE = BAD_REQUEST "batch_too_large"
        "a batch request holds no transfer or more than the largest batch";
    OUT_OF_RANGE = BAD_REQUEST "out_of_range"
        "a seq, size or range lies outside the journal or the tree";
    UNAUTHENTICATED = UNAUTHORIZED "unauthenticated" "the route needs an API key and got none";
    INVALID_API_KEY = UNAUTHORIZED "invalid_api_key"
        "the API key is malformed, unknown or revoked";
    FORBIDDEN = FORBIDDEN "forbidden" "the key's role does not permit this route";
    LEDGER_FORBIDDEN = FORBIDDEN "ledger_forbidden" "the key does not cover this ledger";
    ROUTE_NOT_FOUND = NOT_FOUND "route_not_found" "no route has this path";
    LEDGER_NOT_FOUND = NOT_FOUND "ledger_not_found" "no ledger has this name";
    ACCOUNT_NOT_FOUND = NOT_FOUND "account_not_found" "no account of the ledger has this id";
    TRANSFER_NOT_FOUND = NOT_FOUND "transfer_not_found" "no transfer of the ledger has this id";
    API_KEY_NOT_FOUND = NOT_FOUND "api_key_not_found" "no API key has this id";
    NO_EVENTS = NOT_FOUND "no_events" "the ledger's journal has no event to sign or prove yet";
    CHECKPOINT_NOT_FOUND = NOT_FOUND "checkpoint_not_found"
        "no checkpoint was recorded for this tree size";
    NO_INTEGRITY_CHECK = NOT_FOUND "no_integrity_check" "no integrity check has run on the ledger";
    STATEMENT_NOT_FOUND = NOT_FOUND "statement_not_found" "no statement has this id";
    RECONCILIATION_NOT_FOUND = NOT_FOUND "reconciliation_not_found"
        "no reconciliation run has this id";
    RECONCILIATION_ITEM_NOT_FOUND = NOT_FOUND "reconciliation_item_not_found"
        "the run has no item with this number";
    METHOD_NOT_ALLOWED = METHOD_NOT_ALLOWED "method_not_allowed"
        "the route exists but not with this method (`Allow` lists its methods)";
    BODY_TIMEOUT = REQUEST_TIMEOUT "body_timeout"
        "the request body did not arrive in time; nothing was applied";
    LEDGER_EXISTS = CONFLICT "ledger_exists" "a ledger of this name exists";
    ACCOUNT_CODE_TAKEN = CONFLICT "account_code_taken"
        "another account of the ledger has this code";
    ACCOUNT_FROZEN = CONFLICT "account_frozen" "the account is frozen";
    ACCOUNT_CLOSED = CONFLICT "account_closed" "the account is closed";
    ACCOUNT_NOT_EMPTY = CONFLICT "account_not_empty"
        "an account closes only with zero balances and nothing pending";
    INVALID_STATE_TRANSITION = CONFLICT "invalid_state_transition"
        "the state machine has no such transition; `entity`, `from`, `to`, `action` say which";
    TRANSFER_EXISTS_WITH_DIFFERENT_FIELDS = CONFLICT "transfer_exists_with_different_fields"
        "a transfer with this id exists with other fields";
    ACCOUNT_EXISTS_WITH_DIFFERENT_FIELDS = CONFLICT "account_exists_with_different_fields"
        "an account with this id exists with other fields";
    STATEMENT_EXISTS = CONFLICT "statement_exists"
        "these bytes are a statement of another account (`statement_id`)";
    TOO_MANY_COSIGNATURES = CONFLICT "too_many_cosignatures"
        "the checkpoint holds as many cosignatures as it may keep";
    RECONCILIATION_NOT_COMPLETED = CONFLICT "reconciliation_not_completed"
        "the run has not completed, so its items cannot be resolved";
    RECONCILIATION_ALREADY_COMPLETED = CONFLICT "reconciliation_already_completed"
        "the run completed already";
    ITEM_ALREADY_RESOLVED = CONFLICT "item_already_resolved" "the item is resolved already";
    ITEM_NOT_RESOLVED = CONFLICT "item_not_resolved" "the item has no resolution to undo";
    BODY_TOO_LARGE = PAYLOAD_TOO_LARGE "body_too_large"
        "the request body is larger than `LEDGER_MAX_BODY_BYTES`";
    STATEMENT_TOO_LARGE = PAYLOAD_TOO_LARGE "statement_too_large"
        "the statement is over the byte or the line limit";
    UNSUPPORTED_MEDIA_TYPE = UNSUPPORTED_MEDIA_TYPE "unsupported_media_type"
        "the body's Content-Type is not one the route reads";
    SAME_DEBIT_AND_CREDIT_ACCOUNT = UNPROCESSABLE_ENTITY "same_debit_and_credit_account"
        "debit and credit account must differ";
    UNKNOWN_CURRENCY = UNPROCESSABLE_ENTITY "unknown_currency"
        "the currency is neither ISO 4217 nor an asset of the ledger";
    CURRENCY_MISMATCH = UNPROCESSABLE_ENTITY "currency_mismatch"
        "an account holds another currency than the transfer";
    INVALID_AMOUNT = UNPROCESSABLE_ENTITY "invalid_amount"
        "the amount is not positive, has too many decimals or is out of bounds";
    INSUFFICIENT_FUNDS = UNPROCESSABLE_ENTITY "insufficient_funds"
        "the transfer would have an account's debits exceed its credits";
    CREDITS_EXCEED_DEBITS = UNPROCESSABLE_ENTITY "credits_exceed_debits"
        "the transfer would have an account's credits exceed its debits";
    BALANCE_OVERFLOW = UNPROCESSABLE_ENTITY "balance_overflow"
        "a balance would reach 10^28 minor units";
    POST_AMOUNT_EXCEEDS_PENDING = UNPROCESSABLE_ENTITY "post_amount_exceeds_pending"
        "posting more than the pending amount";
    REVERSAL_EXCEEDS_POSTED_AMOUNT = UNPROCESSABLE_ENTITY "reversal_exceeds_posted_amount"
        "reversing more than what remains of the posted amount";
    TIMEOUT_REQUIRES_PENDING = UNPROCESSABLE_ENTITY "timeout_requires_pending"
        "`timeout_seconds` applies only to pending transfers";
    EXPIRY_BEFORE_DEADLINE = UNPROCESSABLE_ENTITY "expiry_before_deadline"
        "an expiry before the transfer's deadline (only a corrupted journal has one)";
    REVERSAL_DOES_NOT_MIRROR_ORIGINAL = UNPROCESSABLE_ENTITY "reversal_does_not_mirror_original"
        "a reversal that does not swap the original's accounts (only a corrupted journal)";
    GENESIS_OUT_OF_PLACE = UNPROCESSABLE_ENTITY "genesis_out_of_place"
        "`ledger_created` anywhere but at seq 1 (only a corrupted journal has one)";
    IDEMPOTENCY_KEY_REUSED = UNPROCESSABLE_ENTITY "idempotency_key_reused"
        "this Idempotency-Key was used for another request";
    STATEMENT_INVALID = UNPROCESSABLE_ENTITY "statement_invalid"
        "lines of the statement cannot be read (`errors`: line, field, reason)";
    STATEMENT_UNBALANCED = UNPROCESSABLE_ENTITY "statement_unbalanced"
        "the opening balance plus the lines is not the closing balance";
    UNKNOWN_CHECKPOINT = UNPROCESSABLE_ENTITY "unknown_checkpoint"
        "the note is not a checkpoint this service signed for the ledger";
    COSIGNATURE_MISSING = UNPROCESSABLE_ENTITY "cosignature_missing"
        "the note has no cosignature line of the witness key given";
    COSIGNATURE_INVALID = UNPROCESSABLE_ENTITY "cosignature_invalid"
        "the witness key or its cosignature does not verify";
    INVALID_RESOLUTION = UNPROCESSABLE_ENTITY "invalid_resolution"
        "the resolution does not fit its action (transfer, note, account)";
    INVALID_RECONCILIATION = UNPROCESSABLE_ENTITY "invalid_reconciliation"
        "the run's parameters or totals are impossible";
    RATE_LIMITED = TOO_MANY_REQUESTS "rate_limited"
        "the key sent more than its rate; retry after `Retry-After` seconds";
    INTERNAL_ERROR = INTERNAL_SERVER_ERROR "internal_error"
        "the service failed; the request id identifies it in the logs";
    LEDGER_OVERLOADED = SERVICE_UNAVAILABLE "ledger_overloaded"
        "the ledger's write queue is full; nothing was applied, retry";
    NOT_COMMITTED = SERVICE_UNAVAILABLE "not_committed"
        "nothing of the request was committed; retry with the same Idempotency-Key";
    COMMIT_OUTCOME_UNKNOWN = SERVICE_UNAVAILABLE "commit_outcome_unknown"
        "the connection broke during the commit; retry with the same key, it applies once";
    SHUTTING_DOWN = SERVICE_UNAVAILABLE "shutting_down"
        "the service is shutting down; retry on another instance";
    DATABASE_TIMEOUT = SERVICE_UNAVAILABLE "database_timeout"
        "the database did not answer within the statement timeout; retry";
    DATABASE_UNAVAILABLE = SERVICE_UNAVAILABLE "database_unavailable"
        "the database is not reachable right now; retry";
    RECONCILIATION_FAILED = SERVICE_UNAVAILABLE "reconciliation_failed"
        "the run's items could not be computed; retry with the same Idempotency-Key";
}

/// The status of a well-formed request that a ledger rule refuses: what a refusal of the engine
/// would answer if its code were missing from the catalogue (none is: a test checks).
pub const REFUSAL_STATUS: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;

/// The entry of a code, if the catalogue has it.
pub fn find(code: &str) -> Option<&'static ErrorCode> {
    CATALOGUE.iter().find(|entry| entry.code == code)
}

/// The catalogue as a Markdown table (the README's, between its `error-codes` markers).
pub fn markdown_table() -> String {
    let mut table = String::from("| code | status | meaning |\n|---|---|---|\n");
    for entry in CATALOGUE {
        table.push_str(&format!(
            "| `{}` | {} | {} |\n",
            entry.code,
            entry.status.as_u16(),
            entry.meaning.replace('|', "\\|")
        ));
    }
    table
}

/// The catalogue as one line per code, for the OpenAPI description of `Problem.code`.
pub fn openapi_description() -> String {
    let mut text =
        String::from("Stable, snake_case: what clients branch on. Every code, with its status:\n");
    for entry in CATALOGUE {
        text.push_str(&format!(
            "\n- `{}` ({}): {}",
            entry.code,
            entry.status.as_u16(),
            entry.meaning
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Rejection;

    #[test]
    fn every_code_appears_once_in_snake_case_with_an_error_status() {
        let mut seen = std::collections::BTreeSet::new();
        for entry in CATALOGUE {
            assert!(seen.insert(entry.code), "{} twice", entry.code);
            assert!(
                entry
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                entry.code
            );
            assert!(entry.status.is_client_error() || entry.status.is_server_error());
            assert!(!entry.meaning.is_empty() && !entry.meaning.contains('\n'));
        }
        let statuses: Vec<u16> = CATALOGUE
            .iter()
            .map(|entry| entry.status.as_u16())
            .collect();
        assert!(
            statuses.windows(2).all(|pair| pair[0] <= pair[1]),
            "ordered by status"
        );
    }

    #[test]
    fn every_code_of_the_engine_is_in_the_catalogue() {
        // An atomic batch's refusal answers with its item's own code (and `index`).
        let answered = Rejection::ALL_CODES
            .iter()
            .filter(|code| **code != "batch_item_rejected");
        for code in answered {
            assert!(find(code).is_some(), "{code} is not in the catalogue");
        }
    }

    /// One rejection of every kind. The matches have no wildcard, so that a new variant does
    /// not compile until it is listed here (and so checked against the catalogue).
    fn every_kind_of_rejection() -> Vec<Rejection> {
        use crate::domain::money::AmountError;
        use crate::domain::reconciliation::{ReconciliationFault as F, ResolutionAction};
        use crate::domain::state_machine::InvalidTransition;
        use crate::domain::*;
        let account = AccountId::new(uuid::Uuid::nil());
        let transfer = TransferId::new(uuid::Uuid::nil());
        let run = ReconciliationId::new(uuid::Uuid::nil());
        let eur = CurrencyCode::parse("EUR").unwrap();
        let one = rust_decimal::Decimal::ONE;
        let transition = InvalidTransition {
            from: "voided",
            action: "post",
            to: "posted",
        };
        let faults = vec![
            F::RunAlreadyCompleted(run),
            F::RunNotFound(run),
            F::CutoffNotInThePast {
                cutoff_seq: 2,
                event_seq: 1,
            },
            F::RulesDiffer,
            F::TotalsMalformed,
            F::CountsDoNotAddUp {
                item_count: 1,
                sum_of_counts: 2,
            },
            F::PeriodReversed,
            F::DateWindowTooWide(99),
            F::ItemNotInRun {
                item_no: 2,
                item_count: 1,
            },
            F::ItemAlreadyResolved(1),
            F::ItemNotResolved(1),
            F::TransferRequired(ResolutionAction::Match),
            F::TransferNotAllowed(ResolutionAction::Accept),
            F::NoteRequired,
            F::NoteTooLong,
            F::TransferNotOnAccount(transfer),
        ];
        for fault in &faults {
            match fault {
                F::RunAlreadyCompleted(_)
                | F::RunNotFound(_)
                | F::CutoffNotInThePast { .. }
                | F::RulesDiffer
                | F::TotalsMalformed
                | F::CountsDoNotAddUp { .. }
                | F::PeriodReversed
                | F::DateWindowTooWide(_)
                | F::ItemNotInRun { .. }
                | F::ItemAlreadyResolved(_)
                | F::ItemNotResolved(_)
                | F::TransferRequired(_)
                | F::TransferNotAllowed(_)
                | F::NoteRequired
                | F::NoteTooLong
                | F::TransferNotOnAccount(_) => {}
            }
        }
        let mut rejections = vec![
            Rejection::AccountNotFound(account),
            Rejection::TransferNotFound(transfer),
            Rejection::SameAccount,
            Rejection::UnknownCurrency(eur.clone()),
            Rejection::CurrencyMismatch {
                account_id: account,
                account_currency: eur.clone(),
                transfer_currency: eur,
            },
            Rejection::InvalidAmount(AmountError::NotPositive),
            Rejection::AccountFrozen(account),
            Rejection::AccountClosed(account),
            Rejection::InsufficientFunds(account),
            Rejection::CreditsExceedDebits(account),
            Rejection::BalanceOverflow(account),
            Rejection::InvalidStateTransition {
                entity: "transfer",
                transition,
            },
            Rejection::PostAmountExceedsPending {
                pending: one,
                requested: one,
            },
            Rejection::ReversalExceedsPostedAmount {
                reversible: one,
                requested: one,
            },
            Rejection::TimeoutWithoutPending,
            Rejection::TransferExistsWithDifferentFields(transfer),
            Rejection::AccountExistsWithDifferentFields(account),
            Rejection::AccountCodeTaken(AccountCode::parse("a").unwrap()),
            Rejection::AccountNotEmpty(account),
            Rejection::ExpiryBeforeDeadline(transfer),
            Rejection::ReversalDoesNotMirror(transfer),
            Rejection::GenesisOutOfPlace,
            Rejection::BatchItemRejected {
                index: 0,
                rejection: Box::new(Rejection::SameAccount),
            },
        ];
        rejections.extend(faults.into_iter().map(Rejection::Reconciliation));
        for rejection in &rejections {
            match rejection {
                Rejection::AccountNotFound(_)
                | Rejection::TransferNotFound(_)
                | Rejection::SameAccount
                | Rejection::UnknownCurrency(_)
                | Rejection::CurrencyMismatch { .. }
                | Rejection::InvalidAmount(_)
                | Rejection::AccountFrozen(_)
                | Rejection::AccountClosed(_)
                | Rejection::InsufficientFunds(_)
                | Rejection::CreditsExceedDebits(_)
                | Rejection::BalanceOverflow(_)
                | Rejection::InvalidStateTransition { .. }
                | Rejection::PostAmountExceedsPending { .. }
                | Rejection::ReversalExceedsPostedAmount { .. }
                | Rejection::TimeoutWithoutPending
                | Rejection::TransferExistsWithDifferentFields(_)
                | Rejection::AccountExistsWithDifferentFields(_)
                | Rejection::AccountCodeTaken(_)
                | Rejection::AccountNotEmpty(_)
                | Rejection::ExpiryBeforeDeadline(_)
                | Rejection::ReversalDoesNotMirror(_)
                | Rejection::GenesisOutOfPlace
                | Rejection::BatchItemRejected { .. }
                | Rejection::Reconciliation(_) => {}
            }
        }
        rejections
    }

    #[test]
    fn every_rejection_answers_with_its_catalogued_code_and_status() {
        let mut codes = std::collections::BTreeSet::new();
        for rejection in every_kind_of_rejection() {
            let code = rejection.code();
            assert!(
                Rejection::ALL_CODES.contains(&code),
                "{code} is not in ALL_CODES"
            );
            codes.insert(code);
            let inner = match &rejection {
                Rejection::BatchItemRejected { rejection, .. } => rejection.code(),
                _ => code,
            };
            let entry = find(inner).unwrap_or_else(|| panic!("{inner} is not catalogued"));
            let error = crate::http::problem::ApiError::from(rejection);
            assert_eq!((error.code, error.status), (entry.code, entry.status));
        }
        assert_eq!(
            codes.len(),
            Rejection::ALL_CODES.len(),
            "ALL_CODES lists only real codes"
        );
    }

    #[test]
    fn the_readme_table_is_the_catalogue() {
        let readme = include_str!("../../README.md");
        let begin = "<!-- error-codes:begin (generated from src/http/codes.rs) -->\n";
        let end = "<!-- error-codes:end -->";
        let start = readme
            .find(begin)
            .expect("README.md has the error-codes markers")
            + begin.len();
        let stop = readme[start..]
            .find(end)
            .expect("README.md closes the error-codes table")
            + start;
        let region = &readme[start..stop];
        let table = region
            .rsplit("\n\n")
            .find(|part| !part.is_empty())
            .unwrap_or("");
        assert_eq!(
            table,
            markdown_table(),
            "README.md's table of error codes differs from the catalogue; replace it with \
             `ledger::http::codes::markdown_table()`"
        );
    }
}
