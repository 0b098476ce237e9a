//! Reconciliation against the outside world (§7), as the journal records it: the completion of
//! a run (what was compared, as of which seq, with what result) and every resolution of an item.
//!
//! The matching itself is set-based in the database (`storage::matching`); what enters the
//! journal is its summary and the digest of its items, which an auditor recomputes from the
//! items file (`docs/AUDIT_FORMAT.md`). The book checks that the summary is consistent in itself
//! and that every resolution follows the item's state machine: `unresolved → resolved` by
//! `match`, `accept` or `adjust`, and `resolved → unresolved` by `undo`.

use std::collections::HashMap;

use rust_decimal::Decimal;

use super::money::CurrencyCode;
use super::names::{AccountId, TransferId};
pub use super::names::{ReconciliationId, StatementId};

/// The rules a run applies, in the order it applies them. Recorded in every completion event,
/// so a change of rules is visible in the journal.
pub const RULES: &[&str] = &[
    "reference_amount",
    "amount_date",
    "reference_split",
    "reference_mismatch",
    "ambiguous",
    "unmatched",
];

/// The widest date window a run may use.
pub const MAX_DATE_WINDOW_DAYS: u32 = 366;

/// Longest note of a resolution, in characters.
pub const MAX_NOTE_CHARS: usize = 1024;

/// What a run decided about one statement line or one ledger transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemStatus {
    Matched,
    Mismatched,
    Ambiguous,
    MissingInLedger,
    MissingInStatement,
}

impl ItemStatus {
    /// Every status, in the order summaries list them.
    pub const ALL: [ItemStatus; 5] = [
        ItemStatus::Matched,
        ItemStatus::Mismatched,
        ItemStatus::Ambiguous,
        ItemStatus::MissingInLedger,
        ItemStatus::MissingInStatement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Matched => "matched",
            ItemStatus::Mismatched => "mismatched",
            ItemStatus::Ambiguous => "ambiguous",
            ItemStatus::MissingInLedger => "missing_in_ledger",
            ItemStatus::MissingInStatement => "missing_in_statement",
        }
    }

    pub fn parse(text: &str) -> Option<ItemStatus> {
        ItemStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

/// Count and decimal totals of the items of one status.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusTotal {
    pub status: ItemStatus,
    pub count: u64,
    /// Σ of the statement amounts of these items (signed, at the account's scale).
    pub statement_amount: Decimal,
    /// Σ of the ledger amounts of these items (signed, at the account's scale).
    pub ledger_amount: Decimal,
}

/// Book versus bank: the statement's balances against the account's posted balance at the
/// period's boundaries, as of the run's cut-off.
#[derive(Clone, Debug, PartialEq)]
pub struct BalanceFinding {
    pub statement_opening: Option<Decimal>,
    pub statement_closing: Option<Decimal>,
    /// The account's posted balance on its normal side before the period's first day.
    pub book_opening: Decimal,
    /// The account's posted balance on its normal side at the end of the period's last day.
    pub book_closing: Decimal,
}

impl BalanceFinding {
    /// `None` where the statement states no such balance.
    pub fn opening_agrees(&self) -> Option<bool> {
        self.statement_opening
            .map(|opening| opening == self.book_opening)
    }

    pub fn closing_agrees(&self) -> Option<bool> {
        self.statement_closing
            .map(|closing| closing == self.book_closing)
    }
}

/// A calendar date as days since 1970-01-01 (the core needs no calendar, only order).
pub type DayNumber = i32;

/// The journal's record of a completed run.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconciliationCompleted {
    pub id: ReconciliationId,
    pub statement_id: StatementId,
    /// SHA-256 of the statement file's bytes.
    pub statement_sha256: [u8; 32],
    pub account_id: AccountId,
    /// The account's currency: every amount of the summary is at its scale.
    pub currency: CurrencyCode,
    /// The last journal seq the run read: the same run at the same cut-off gives the same items.
    pub cutoff_seq: u64,
    pub date_window_days: u32,
    pub period_start: DayNumber,
    pub period_end: DayNumber,
    /// Exactly [`RULES`], in order.
    pub rules: Vec<String>,
    pub item_count: u64,
    /// SHA-256 of the items file: the canonical JSON lines of every item, in item order.
    pub items_digest: [u8; 32],
    /// One per status, in the order of [`ItemStatus::ALL`].
    pub totals: Vec<StatusTotal>,
    pub balances: BalanceFinding,
}

/// One decision of a run, as the items file states it (the run's own classification; later
/// resolutions are separate events).
#[derive(Clone, Debug, PartialEq)]
pub struct ReconciliationItem {
    /// 1-based; a statement line's item has its line's number, then come the transfers missing
    /// from the statement.
    pub item_no: u64,
    pub status: ItemStatus,
    /// The rule that decided it (one of [`RULES`]).
    pub rule: String,
    pub line_no: Option<u64>,
    pub booking_date: Option<DayNumber>,
    pub reference: Option<String>,
    pub statement_amount: Option<Decimal>,
    pub ledger_amount: Option<Decimal>,
    pub difference: Option<Decimal>,
    pub transfer_ids: Vec<TransferId>,
    pub candidate_transfer_ids: Vec<TransferId>,
}

/// What a person decided about an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolutionAction {
    /// The item corresponds to a named transfer.
    Match,
    /// The difference is accepted as it is, with a note.
    Accept,
    /// A correcting transfer was posted (in the same batch, just before).
    Adjust,
    /// Takes back the item's current resolution.
    Undo,
}

impl ResolutionAction {
    pub const ALL: [ResolutionAction; 4] = [
        ResolutionAction::Match,
        ResolutionAction::Accept,
        ResolutionAction::Adjust,
        ResolutionAction::Undo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResolutionAction::Match => "match",
            ResolutionAction::Accept => "accept",
            ResolutionAction::Adjust => "adjust",
            ResolutionAction::Undo => "undo",
        }
    }

    pub fn parse(text: &str) -> Option<ResolutionAction> {
        ResolutionAction::ALL
            .into_iter()
            .find(|action| action.as_str() == text)
    }

    /// Whether this action names a transfer (`match`: the one it corresponds to; `adjust`: the
    /// correcting one).
    pub fn links_transfer(self) -> bool {
        matches!(self, ResolutionAction::Match | ResolutionAction::Adjust)
    }
}

/// The journal's record of one resolution of an item.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemResolved {
    pub reconciliation_id: ReconciliationId,
    pub item_no: u64,
    pub action: ResolutionAction,
    pub transfer_id: Option<TransferId>,
    pub note: Option<String>,
}

/// What the book knows of a completed run: enough to check every later resolution.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    pub account_id: AccountId,
    pub item_count: u64,
    /// Items whose current resolution is not undone, with that resolution's action.
    pub resolved_items: HashMap<u64, ResolutionAction>,
}

/// Why a reconciliation event is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReconciliationFault {
    RunAlreadyCompleted(ReconciliationId),
    RunNotFound(ReconciliationId),
    CutoffNotInThePast { cutoff_seq: u64, event_seq: u64 },
    RulesDiffer,
    TotalsMalformed,
    CountsDoNotAddUp { item_count: u64, sum_of_counts: u64 },
    PeriodReversed,
    DateWindowTooWide(u32),
    ItemNotInRun { item_no: u64, item_count: u64 },
    ItemAlreadyResolved(u64),
    ItemNotResolved(u64),
    TransferRequired(ResolutionAction),
    TransferNotAllowed(ResolutionAction),
    NoteRequired,
    NoteTooLong,
    TransferNotOnAccount(TransferId),
}

impl ReconciliationFault {
    /// The stable code of the rejection that carries this fault.
    pub fn code(&self) -> &'static str {
        use ReconciliationFault::*;
        match self {
            RunAlreadyCompleted(_) => "reconciliation_already_completed",
            RunNotFound(_) => "reconciliation_not_found",
            ItemNotInRun { .. } => "reconciliation_item_not_found",
            ItemAlreadyResolved(_) => "item_already_resolved",
            ItemNotResolved(_) => "item_not_resolved",
            TransferRequired(_)
            | TransferNotAllowed(_)
            | NoteRequired
            | NoteTooLong
            | TransferNotOnAccount(_) => "invalid_resolution",
            CutoffNotInThePast { .. }
            | RulesDiffer
            | TotalsMalformed
            | CountsDoNotAddUp { .. }
            | PeriodReversed
            | DateWindowTooWide(_) => "invalid_reconciliation",
        }
    }
}

impl std::fmt::Display for ReconciliationFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use ReconciliationFault::*;
        match self {
            RunAlreadyCompleted(id) => write!(f, "reconciliation {id} is already completed"),
            RunNotFound(id) => write!(
                f,
                "reconciliation {id} is not a completed run of this ledger"
            ),
            CutoffNotInThePast {
                cutoff_seq,
                event_seq,
            } => write!(
                f,
                "cut-off seq {cutoff_seq} is not before the completion event (seq {event_seq})"
            ),
            RulesDiffer => write!(f, "the rules must be exactly {}", RULES.join(", ")),
            TotalsMalformed => f.write_str("totals must list each status once, in order"),
            CountsDoNotAddUp {
                item_count,
                sum_of_counts,
            } => write!(
                f,
                "the counts per status add up to {sum_of_counts}, not to the {item_count} items"
            ),
            PeriodReversed => f.write_str("the period ends before it starts"),
            DateWindowTooWide(days) => {
                write!(
                    f,
                    "date_window_days must be 0..={MAX_DATE_WINDOW_DAYS}, got {days}"
                )
            }
            ItemNotInRun {
                item_no,
                item_count,
            } => {
                write!(
                    f,
                    "item {item_no} is not among the run's {item_count} items"
                )
            }
            ItemAlreadyResolved(item) => {
                write!(
                    f,
                    "item {item} is resolved already; undo its resolution first"
                )
            }
            ItemNotResolved(item) => write!(f, "item {item} has no resolution to undo"),
            TransferRequired(action) => write!(f, "{} names a transfer", action.as_str()),
            TransferNotAllowed(action) => write!(f, "{} names no transfer", action.as_str()),
            NoteRequired => f.write_str("accept needs a note"),
            NoteTooLong => write!(f, "a note has at most {MAX_NOTE_CHARS} characters"),
            TransferNotOnAccount(id) => {
                write!(
                    f,
                    "transfer {id} neither debits nor credits the run's account"
                )
            }
        }
    }
}

impl ReconciliationCompleted {
    /// The checks that need nothing but the event itself.
    pub fn check_structure(&self) -> Result<(), ReconciliationFault> {
        if self
            .rules
            .iter()
            .map(String::as_str)
            .ne(RULES.iter().copied())
        {
            return Err(ReconciliationFault::RulesDiffer);
        }
        if self
            .totals
            .iter()
            .map(|total| total.status)
            .ne(ItemStatus::ALL)
        {
            return Err(ReconciliationFault::TotalsMalformed);
        }
        let sum_of_counts = self
            .totals
            .iter()
            .try_fold(0u64, |sum, total| sum.checked_add(total.count));
        if sum_of_counts != Some(self.item_count) {
            return Err(ReconciliationFault::CountsDoNotAddUp {
                item_count: self.item_count,
                sum_of_counts: sum_of_counts.unwrap_or(u64::MAX),
            });
        }
        if self.period_end < self.period_start {
            return Err(ReconciliationFault::PeriodReversed);
        }
        if self.date_window_days > MAX_DATE_WINDOW_DAYS {
            return Err(ReconciliationFault::DateWindowTooWide(
                self.date_window_days,
            ));
        }
        Ok(())
    }
}

impl ItemResolved {
    /// The checks that need nothing but the resolution itself.
    pub fn check_structure(&self) -> Result<(), ReconciliationFault> {
        match (self.action.links_transfer(), self.transfer_id) {
            (true, None) => return Err(ReconciliationFault::TransferRequired(self.action)),
            (false, Some(_)) => return Err(ReconciliationFault::TransferNotAllowed(self.action)),
            _ => {}
        }
        let note_chars = self.note.as_deref().map_or(0, |note| note.chars().count());
        if self.action == ResolutionAction::Accept && note_chars == 0 {
            return Err(ReconciliationFault::NoteRequired);
        }
        if note_chars > MAX_NOTE_CHARS {
            return Err(ReconciliationFault::NoteTooLong);
        }
        Ok(())
    }

    /// Checks the resolution against the run's state (the item's state machine).
    pub fn check_against(&self, run: &RunRecord) -> Result<(), ReconciliationFault> {
        if self.item_no == 0 || self.item_no > run.item_count {
            return Err(ReconciliationFault::ItemNotInRun {
                item_no: self.item_no,
                item_count: run.item_count,
            });
        }
        let resolved = run.resolved_items.contains_key(&self.item_no);
        match (self.action, resolved) {
            (ResolutionAction::Undo, false) => {
                Err(ReconciliationFault::ItemNotResolved(self.item_no))
            }
            (ResolutionAction::Undo, true) => Ok(()),
            (_, true) => Err(ReconciliationFault::ItemAlreadyResolved(self.item_no)),
            (_, false) => Ok(()),
        }
    }
}

impl RunRecord {
    pub fn completed(event: &ReconciliationCompleted) -> RunRecord {
        RunRecord {
            account_id: event.account_id,
            item_count: event.item_count,
            resolved_items: HashMap::new(),
        }
    }

    /// The run after the resolution (already checked).
    pub fn record(&mut self, resolution: &ItemResolved) {
        match resolution.action {
            ResolutionAction::Undo => {
                self.resolved_items.remove(&resolution.item_no);
            }
            action => {
                self.resolved_items.insert(resolution.item_no, action);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn resolution(action: ResolutionAction, transfer: bool, note: Option<&str>) -> ItemResolved {
        ItemResolved {
            reconciliation_id: ReconciliationId::new(Uuid::from_u128(1)),
            item_no: 2,
            action,
            transfer_id: transfer.then(|| TransferId::new(Uuid::from_u128(9))),
            note: note.map(str::to_owned),
        }
    }

    fn run_of(items: u64) -> RunRecord {
        RunRecord {
            account_id: AccountId::new(Uuid::from_u128(5)),
            item_count: items,
            resolved_items: HashMap::new(),
        }
    }

    #[test]
    fn an_item_is_resolved_once_then_undone_then_resolved_again() {
        let mut run = run_of(3);
        let accept = resolution(ResolutionAction::Accept, false, Some("bank fee"));
        let undo = resolution(ResolutionAction::Undo, false, None);
        assert_eq!(
            undo.check_against(&run),
            Err(ReconciliationFault::ItemNotResolved(2))
        );
        accept.check_against(&run).unwrap();
        run.record(&accept);
        assert_eq!(
            accept.check_against(&run),
            Err(ReconciliationFault::ItemAlreadyResolved(2))
        );
        undo.check_against(&run).unwrap();
        run.record(&undo);
        accept.check_against(&run).unwrap();
    }

    #[test]
    fn only_match_and_adjust_name_a_transfer_and_accept_needs_a_note() {
        let rule = |action, transfer, note| resolution(action, transfer, note).check_structure();
        assert!(rule(ResolutionAction::Match, true, None).is_ok());
        assert!(rule(ResolutionAction::Adjust, true, Some("fee")).is_ok());
        assert_eq!(
            rule(ResolutionAction::Match, false, None),
            Err(ReconciliationFault::TransferRequired(
                ResolutionAction::Match
            ))
        );
        assert_eq!(
            rule(ResolutionAction::Accept, true, Some("x")),
            Err(ReconciliationFault::TransferNotAllowed(
                ResolutionAction::Accept
            ))
        );
        assert_eq!(
            rule(ResolutionAction::Accept, false, None),
            Err(ReconciliationFault::NoteRequired)
        );
        let long = "n".repeat(MAX_NOTE_CHARS + 1);
        assert_eq!(
            rule(ResolutionAction::Undo, false, Some(&long)),
            Err(ReconciliationFault::NoteTooLong)
        );
    }

    #[test]
    fn an_item_outside_the_run_cannot_be_resolved() {
        let mut beyond = resolution(ResolutionAction::Undo, false, None);
        beyond.item_no = 4;
        assert_eq!(
            beyond.check_against(&run_of(3)),
            Err(ReconciliationFault::ItemNotInRun {
                item_no: 4,
                item_count: 3
            })
        );
        beyond.item_no = 0;
        assert!(beyond.check_against(&run_of(3)).is_err());
    }
}
