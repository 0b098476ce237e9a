//! The shell around the audit core: checkpoints, proofs, the signed export and the integrity
//! check, reading what storage keeps and computing with `audit` (§5, §7).

use std::collections::BTreeMap;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::audit::checkpoint::sign_checkpoint_at;
use crate::audit::export::{self, AccountBalance, ContentHasher, Header, Line, Manifest, Opening};
use crate::audit::merkle::{self, LeafRange, MerkleFrontier, SubtreeId};
use crate::audit::replay::{FaultKind, Replayer};
use crate::audit::{ChainHead, Hash32, JournalEvent};
use crate::domain::*;
use crate::signing::Signer;
use crate::storage::audit::StoredCheckpoint;
use crate::storage::{LedgerRecord, Storage, StorageError, StoredHead};

/// Events read from storage at a time, by exports and integrity checks: memory stays bounded
/// whatever the range.
const PAGE_EVENTS: usize = 1000;
/// Accounts read from storage at a time by exports.
const PAGE_ACCOUNTS: usize = 1000;
/// Ledgers listed per page by the scheduled integrity checks.
const LEDGERS_PER_PAGE: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A size or seq outside what the tree holds.
    #[error("{0}")]
    OutOfRange(String),
    #[error("the ledger has no event yet")]
    Empty,
    /// The client reading an export went away.
    #[error("the client went away")]
    ClientGone,
}

/// An RFC 9162 inclusion proof of one event in a tree of `tree_size` leaves.
#[derive(Clone, Debug, PartialEq)]
pub struct InclusionProof {
    pub seq: u64,
    pub tree_size: u64,
    pub event_hash: Hash32,
    pub root: Hash32,
    pub proof: Vec<Hash32>,
}

/// An RFC 9162 consistency proof: the tree of `from_size` leaves is a prefix of the other.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsistencyProof {
    pub from_size: u64,
    pub to_size: u64,
    pub from_root: Hash32,
    pub to_root: Hash32,
    pub proof: Vec<Hash32>,
}

pub struct Auditor<'a> {
    pub storage: &'a Storage,
    pub signer: &'a Signer,
}

impl Auditor<'_> {
    async fn subtrees(
        &self,
        ledger_id: i32,
        ids: Vec<SubtreeId>,
    ) -> Result<BTreeMap<SubtreeId, Hash32>, AuditError> {
        Ok(self.storage.merkle_subtrees(ledger_id, &ids).await?)
    }

    /// The size of the ledger's tree now (every committed event).
    pub async fn tree_size(&self, ledger: &LedgerRecord) -> Result<u64, AuditError> {
        Ok(self.storage.ledger_head(ledger.id).await?.merkle.size())
    }

    /// The root of the tree of the first `size` events.
    pub async fn root_at(&self, ledger: &LedgerRecord, size: u64) -> Result<Hash32, AuditError> {
        let range =
            LeafRange::new(0, size).map_err(|error| AuditError::OutOfRange(error.to_string()))?;
        let subtrees = self.subtrees(ledger.id, range.subtrees()).await?;
        merkle::tree_root(size, &subtrees)
            .map_err(|error| AuditError::Storage(StorageError::Corrupt(error.to_string())))
    }

    /// The frontier (compact range) of the tree of the first `size` events.
    async fn frontier_at(
        &self,
        ledger: &LedgerRecord,
        size: u64,
    ) -> Result<MerkleFrontier, AuditError> {
        if size == 0 {
            return Ok(MerkleFrontier::new());
        }
        let ids = LeafRange::new(0, size)
            .map_err(|error| AuditError::OutOfRange(error.to_string()))?
            .subtrees();
        let subtrees = self.subtrees(ledger.id, ids.clone()).await?;
        let hashes = ids.iter().map(|id| subtrees[id]).collect();
        MerkleFrontier::from_parts(size, hashes)
            .map_err(|error| AuditError::Storage(StorageError::Corrupt(error.to_string())))
    }

    /// The signed checkpoint of the tree of the first `size` events (recorded; the recorded one
    /// when it exists).
    pub async fn checkpoint_of_size(
        &self,
        ledger: &LedgerRecord,
        size: u64,
    ) -> Result<StoredCheckpoint, AuditError> {
        let root = self.root_at(ledger, size).await?;
        self.sign_and_record(ledger, size, root).await
    }

    /// Signs the checkpoint of a tree of `size` leaves with this `root`, and records it (or
    /// returns the one recorded for that size already).
    async fn sign_and_record(
        &self,
        ledger: &LedgerRecord,
        size: u64,
        root: Hash32,
    ) -> Result<StoredCheckpoint, AuditError> {
        let origin = self.signer.origin(ledger.name.as_str());
        let issued_at = crate::writer::now();
        let note = sign_checkpoint_at(&origin, size, &root, issued_at, self.signer.key())
            .map_err(|error| AuditError::OutOfRange(error.to_string()))?;
        let checkpoint = StoredCheckpoint {
            tree_size: size,
            root,
            note,
            key_id: self.signer.key_id().to_owned(),
            issued_at,
        };
        let recorded = self
            .storage
            .record_checkpoint(ledger.id, &checkpoint)
            .await?;
        let name = ledger.name.to_string();
        metrics::gauge!(LAST_CHECKPOINT_GAUGE, "ledger" => name).set(unix_seconds(issued_at));
        Ok(recorded)
    }

    /// A checkpoint of the tree as it is now, unless the latest one covers it already.
    pub async fn issue_checkpoint(
        &self,
        ledger: &LedgerRecord,
    ) -> Result<StoredCheckpoint, AuditError> {
        let head = self.storage.ledger_head(ledger.id).await?;
        let size = head.merkle.size();
        if size == 0 {
            return Err(AuditError::Empty);
        }
        if let Some(latest) = self.storage.latest_checkpoint(ledger.id).await? {
            if latest.tree_size >= size {
                return Ok(latest);
            }
        }
        self.sign_and_record(ledger, size, head.merkle.root()).await
    }

    /// The latest checkpoint, issuing one first when there is none.
    pub async fn latest_checkpoint(
        &self,
        ledger: &LedgerRecord,
    ) -> Result<StoredCheckpoint, AuditError> {
        match self.storage.latest_checkpoint(ledger.id).await? {
            Some(checkpoint) => Ok(checkpoint),
            None => self.issue_checkpoint(ledger).await,
        }
    }

    pub async fn inclusion_proof(
        &self,
        ledger: &LedgerRecord,
        seq: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, AuditError> {
        let size_now = self.tree_size(ledger).await?;
        if seq == 0 || seq > tree_size || tree_size > size_now {
            return Err(AuditError::OutOfRange(format!(
                "need 1 <= seq <= tree_size <= {size_now} (the tree's size), got seq {seq}, \
                 tree_size {tree_size}"
            )));
        }
        let ranges = merkle::inclusion_proof_ranges(seq - 1, tree_size)
            .map_err(|error| AuditError::OutOfRange(error.to_string()))?;
        let subtrees = self
            .subtrees(ledger.id, merkle::subtrees_needed(&ranges))
            .await?;
        let proof = merkle::proof_from_ranges(&ranges, &subtrees)
            .map_err(|error| AuditError::Storage(StorageError::Corrupt(error.to_string())))?;
        let event = self
            .storage
            .events_by_seq(ledger, &[seq])
            .await?
            .pop()
            .ok_or_else(|| AuditError::OutOfRange(format!("no event {seq}")))?;
        Ok(InclusionProof {
            seq,
            tree_size,
            event_hash: event.hash,
            root: self.root_at(ledger, tree_size).await?,
            proof,
        })
    }

    pub async fn consistency_proof(
        &self,
        ledger: &LedgerRecord,
        from_size: u64,
        to_size: u64,
    ) -> Result<ConsistencyProof, AuditError> {
        let size_now = self.tree_size(ledger).await?;
        if from_size == 0 || from_size > to_size || to_size > size_now {
            return Err(AuditError::OutOfRange(format!(
                "need 1 <= from_size <= to_size <= {size_now} (the tree's size), got {from_size} \
                 and {to_size}"
            )));
        }
        let ranges = merkle::consistency_proof_ranges(from_size, to_size)
            .map_err(|error| AuditError::OutOfRange(error.to_string()))?;
        let subtrees = self
            .subtrees(ledger.id, merkle::subtrees_needed(&ranges))
            .await?;
        let proof = merkle::proof_from_ranges(&ranges, &subtrees)
            .map_err(|error| AuditError::Storage(StorageError::Corrupt(error.to_string())))?;
        Ok(ConsistencyProof {
            from_size,
            to_size,
            from_root: self.root_at(ledger, from_size).await?,
            to_root: self.root_at(ledger, to_size).await?,
            proof,
        })
    }

    /// Streams the signed export of `from_seq..=to_seq` (docs/AUDIT_FORMAT.md §5) into `sink`,
    /// in chunks of whole lines, never holding the range in memory. Stops quietly when the
    /// receiver goes away. On a failure midway (a journal that does not add up), the lines written
    /// so far are still sent: the missing signature marks the export incomplete, and the auditor
    /// sees where it stopped.
    pub async fn export(
        &self,
        ledger: &LedgerRecord,
        from_seq: u64,
        to_seq: u64,
        sink: mpsc::Sender<Vec<u8>>,
    ) -> Result<(), AuditError> {
        let mut out = ExportWriter {
            sink,
            chunk: Vec::with_capacity(EXPORT_CHUNK_BYTES * 2),
            content: ContentHasher::new(),
            events: 0,
            balances: 0,
            last_at: None,
        };
        let written = self.write_export(ledger, from_seq, to_seq, &mut out).await;
        let flushed = out.flush().await;
        written.and(flushed)
    }

    /// The scheduled integrity check: every ledger, a page of ledgers at a time. A ledger whose
    /// check cannot run is logged and skipped; the others still run.
    pub async fn record_integrity_checks_of_every_ledger(&self) {
        let mut after_id = 0;
        loop {
            let page = match self.storage.ledgers_page(after_id, LEDGERS_PER_PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    let what = "the scheduled integrity checks could not list ledgers";
                    tracing::warn!(error = %error, "{what}");
                    return;
                }
            };
            for ledger in &page.items {
                if let Err(error) = self.record_integrity_check(ledger).await {
                    tracing::warn!(
                        ledger = %ledger.name,
                        error = %error,
                        "the scheduled integrity check could not run"
                    );
                }
            }
            match page.next_after {
                Some(next) => after_id = next,
                None => return,
            }
        }
    }

    async fn write_export(
        &self,
        ledger: &LedgerRecord,
        from_seq: u64,
        to_seq: u64,
        out: &mut ExportWriter,
    ) -> Result<(), AuditError> {
        let origin = self.signer.origin(ledger.name.as_str());
        out.line(&Line::Header(Header {
            ledger: ledger.name.clone(),
            origin: origin.clone(),
            assets: ledger.assets.clone(),
            from_seq,
            to_seq,
        }))
        .await?;
        if from_seq > 1 {
            self.write_opening(ledger, from_seq - 1, out).await?;
        }
        self.write_events(ledger, from_seq, to_seq, out).await?;
        let checkpoint = self.checkpoint_of_size(ledger, to_seq).await?;
        out.line(&Line::Checkpoint {
            tree_size: to_seq,
            note: checkpoint.note,
        })
        .await?;
        let mut after_id = None;
        loop {
            let accounts = self
                .storage
                .accounts_as_of(ledger.id, to_seq, after_id, PAGE_ACCOUNTS)
                .await?;
            for account in &accounts {
                out.balances += 1;
                out.line(&Line::Balance(AccountBalance::of(account)))
                    .await?;
            }
            match accounts.last() {
                Some(last) if accounts.len() == PAGE_ACCOUNTS => after_id = Some(last.id.as_uuid()),
                _ => break,
            }
        }
        let manifest = Manifest {
            ledger: ledger.name.clone(),
            origin,
            from_seq,
            to_seq,
            events: out.events,
            balances: out.balances,
            lines: out.content.lines(),
            content_sha256: out.content.clone().finish(),
            key_id: self.signer.key_id().to_owned(),
            // Not before the last event it covers, even with a clock behind the ledger's.
            signed_at: Some(
                out.last_at
                    .map_or(crate::writer::now(), |last| crate::writer::now().max(last)),
            ),
        };
        let manifest_line = Line::Manifest(manifest).encode();
        let signature = export::sign_manifest(&manifest_line, self.signer.key());
        out.send(manifest_line).await?;
        out.send(Line::Signature(signature).encode()).await
    }

    /// The events `from_seq..=to_seq`, a page at a time; the next page is fetched while this one
    /// is encoded, so PostgreSQL and the encoding work side by side.
    async fn write_events(
        &self,
        ledger: &LedgerRecord,
        from_seq: u64,
        to_seq: u64,
        out: &mut ExportWriter,
    ) -> Result<(), AuditError> {
        let first_after = i64::try_from(from_seq - 1).expect("seq fits");
        let mut page = self
            .storage
            .journal_page(ledger, first_after, PAGE_EVENTS)
            .await?;
        loop {
            let next_after = page.next_after.filter(|next| (*next as u64) < to_seq);
            let prefetch = async {
                match next_after {
                    Some(after) => self
                        .storage
                        .journal_page(ledger, after, PAGE_EVENTS)
                        .await
                        .map(Some),
                    None => Ok(None),
                }
            };
            let write = async {
                for event in page
                    .items
                    .into_iter()
                    .take_while(|event| event.seq <= to_seq)
                {
                    out.events += 1;
                    out.last_at = Some(event.at);
                    out.line(&Line::Event(event)).await?;
                }
                Ok::<_, AuditError>(())
            };
            let (next, written) = futures_util::future::join(prefetch, write).await;
            written?;
            match next? {
                Some(next) => page = next,
                None => return Ok(()),
            }
        }
    }

    /// The state before a range: replayed from genesis through the engine, so the opening the
    /// export states is the one the journal implies.
    async fn write_opening(
        &self,
        ledger: &LedgerRecord,
        seq: u64,
        out: &mut ExportWriter,
    ) -> Result<(), AuditError> {
        let mut replayer = Replayer::new();
        let mut after = 0;
        let mut last_at = None;
        while after < seq as i64 {
            let page = self
                .storage
                .journal_page(ledger, after, PAGE_EVENTS)
                .await?;
            for event in page.items.iter().take_while(|event| event.seq <= seq) {
                replayer.push(event).map_err(|fault| {
                    AuditError::Storage(StorageError::Corrupt(format!(
                        "the journal does not replay: {fault}"
                    )))
                })?;
                last_at = Some(event.at);
            }
            match page.next_after {
                Some(next) => after = next,
                None => break,
            }
        }
        let head: ChainHead = replayer.head();
        let book = replayer.book().ok_or(AuditError::Empty)?;
        let opening = Opening {
            seq,
            hash: head.hash,
            at: last_at.ok_or(AuditError::Empty)?,
            merkle: self.frontier_at(ledger, seq).await?,
        };
        out.line(&Line::Opening(opening)).await?;
        let mut accounts: Vec<&Account> = book.accounts().collect();
        accounts.sort_by_key(|account| account.id);
        for account in accounts {
            out.line(&Line::OpeningAccount(account.clone())).await?;
        }
        let mut open: Vec<&Transfer> = book
            .transfers()
            .filter(|transfer| {
                transfer.state == TransferState::Pending
                    || (transfer.state == TransferState::Posted
                        && transfer.reversible_amount() > rust_decimal::Decimal::ZERO)
            })
            .collect();
        open.sort_by_key(|transfer| transfer.id);
        for transfer in open {
            out.line(&Line::OpeningTransfer(transfer.clone())).await?;
        }
        Ok(())
    }

    /// The integrity check (§7): the chain (seq from 1 without gaps, every hash and prev_hash),
    /// the Merkle tree against the head's frontier and the latest checkpoint, the journal
    /// replayed through the engine (with every limit and the provenance rules `ledger-verify`
    /// holds it to) against the stored balances, §4.2 on the replay (summed without a bound,
    /// as `ledger-verify` does) and on the tables, and §4.3.
    /// Returns the last seq checked and the findings (empty: passed).
    ///
    /// Writers may commit while it runs. The checkpoint is read before the head and the journal
    /// only up to the head's seq, and stored balances are read as of that seq, so that events
    /// committed meanwhile are neither missing nor extra.
    pub async fn integrity_check(
        &self,
        ledger: &LedgerRecord,
    ) -> Result<(u64, Vec<Finding>), AuditError> {
        let mut findings = Findings::default();
        let checkpoint = self.storage.latest_checkpoint(ledger.id).await?;
        let head = self.storage.ledger_head(ledger.id).await?;
        let replayed = self
            .check_journal(ledger, &head, checkpoint.as_ref(), &mut findings)
            .await?;
        if let Some(book) = replayed {
            check_currencies_of_replay(&book, &mut findings);
            self.check_balances_against_replay(ledger, head.chain.seq, &book, &mut findings)
                .await?;
        }
        self.check_balance_tables(ledger, &mut findings).await?;
        Ok((head.chain.seq, findings.into_vec()))
    }

    /// The chain and the tree of the events up to the head, and the journal replayed through the
    /// engine. Returns the replayed book, unless the replay stopped at a fault.
    async fn check_journal(
        &self,
        ledger: &LedgerRecord,
        head: &StoredHead,
        checkpoint: Option<&StoredCheckpoint>,
        findings: &mut Findings,
    ) -> Result<Option<Book>, AuditError> {
        let mut frontier = MerkleFrontier::new();
        let mut previous = ChainHead::GENESIS;
        let mut replayer = Some(Replayer::new().with_provenance_rules());
        let mut after = 0;
        'pages: loop {
            let page = self
                .storage
                .journal_page(ledger, after, PAGE_EVENTS)
                .await?;
            for event in &page.items {
                if event.seq > head.chain.seq {
                    break 'pages;
                }
                // A replayed event had its link and hash checked by the replay: hashed once.
                if !replay_event(&mut replayer, event, findings) {
                    check_chain_link(&previous, event, findings);
                }
                frontier
                    .append_event_hash(&event.hash)
                    .map_err(|error| AuditError::OutOfRange(error.to_string()))?;
                if let Some(checkpoint) =
                    checkpoint.filter(|checkpoint| checkpoint.tree_size == frontier.size())
                {
                    if frontier.root() != checkpoint.root {
                        findings.push(
                            Finding::new(
                                Check::Merkle,
                                format!(
                                "the root of the first {} events is not the signed checkpoint's",
                                checkpoint.tree_size
                            ),
                            )
                            .at_seq(event.seq),
                        );
                    }
                }
                previous = ChainHead {
                    seq: event.seq,
                    hash: event.hash,
                };
            }
            match page.next_after {
                Some(next) => after = next,
                None => break,
            }
        }
        if previous != head.chain {
            findings.push(
                Finding::new(
                    Check::Chain,
                    format!(
                        "the journal ends at seq {} but the chain head is at seq {}",
                        previous.seq, head.chain.seq
                    ),
                )
                .at_seq(previous.seq),
            );
        }
        if frontier != head.merkle {
            findings.push(Finding::new(
                Check::Merkle,
                "the stored Merkle frontier is not the tree of the journal's events",
            ));
        }
        if checkpoint.is_some_and(|checkpoint| checkpoint.tree_size > frontier.size()) {
            findings.push(Finding::new(
                Check::Merkle,
                "the latest checkpoint covers events the journal no longer has",
            ));
        }
        Ok(replayer.and_then(Replayer::into_book))
    }

    /// Every account's stored balances as of `seq` (its last posting's running balance, what
    /// exports state) against the balances the journal replays to: catches postings and
    /// balances rewritten together, which the sums of §4.3 cannot see.
    async fn check_balances_against_replay(
        &self,
        ledger: &LedgerRecord,
        seq: u64,
        book: &Book,
        findings: &mut Findings,
    ) -> Result<(), AuditError> {
        let mut stored_accounts = 0;
        let mut after_id = None;
        loop {
            let accounts = self
                .storage
                .accounts_as_of(ledger.id, seq, after_id, PAGE_ACCOUNTS)
                .await?;
            for stored in &accounts {
                stored_accounts += 1;
                let agrees = book.account(stored.id).is_some_and(|replayed| {
                    replayed.balances == stored.balances && replayed.status == stored.status
                });
                if !agrees {
                    findings.push(
                        Finding::new(
                            Check::Replay,
                            format!(
                                "the account's stored balances as of seq {seq} are not what the \
                             journal replays to"
                            ),
                        )
                        .of_account(stored.id),
                    );
                }
            }
            match accounts.last() {
                Some(last) if accounts.len() == PAGE_ACCOUNTS => after_id = Some(last.id.as_uuid()),
                _ => break,
            }
        }
        let replayed_accounts = book.accounts().count();
        if stored_accounts != replayed_accounts {
            findings.push(Finding::new(
                Check::Replay,
                format!(
                    "the journal opens {replayed_accounts} accounts up to seq {seq}, the database \
                     has {stored_accounts}"
                ),
            ));
        }
        Ok(())
    }

    /// §4.2 and §4.3 on the tables as they are now, each in one statement.
    async fn check_balance_tables(
        &self,
        ledger: &LedgerRecord,
        findings: &mut Findings,
    ) -> Result<(), AuditError> {
        for (currency, posted_debits, posted_credits, pending_debits, pending_credits) in
            self.storage.unbalanced_currencies(ledger.id).await?
        {
            findings.push(Finding::new(
                Check::BalancedCurrencies,
                format!(
                "{currency}: posted debits {posted_debits} vs credits {posted_credits}, pending \
                 debits {pending_debits} vs credits {pending_credits}"
            ),
            ));
        }
        for account in self
            .storage
            .accounts_differing_from_last_posting(ledger.id)
            .await?
        {
            findings.push(
                Finding::new(
                    Check::RunningBalance,
                    "the account's balances are not its last posting's running balance",
                )
                .of_account(account),
            );
        }
        for account in self
            .storage
            .accounts_differing_from_postings(ledger.id)
            .await?
        {
            findings.push(
                Finding::new(
                    Check::AccountPostings,
                    "the account's balances are not the sums of its postings",
                )
                .of_account(account),
            );
        }
        Ok(())
    }
}

/// Which part of the integrity check found something wrong (`check` of a finding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// seq, prev_hash, hash.
    Chain,
    /// The Merkle tree against the stored frontier and the latest checkpoint.
    Merkle,
    /// The journal replayed through the engine, against the stored balances.
    Replay,
    /// §4.2: per currency, debits equal credits.
    BalancedCurrencies,
    /// §4.3: an account's balances are the sums of its postings.
    AccountPostings,
    /// An account's balances are its last posting's running balance.
    RunningBalance,
    /// The check itself could not run.
    Run,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Chain => "chain",
            Check::Merkle => "merkle",
            Check::Replay => "replay",
            Check::BalancedCurrencies => "balanced_currencies",
            Check::AccountPostings => "account_postings",
            Check::RunningBalance => "running_balance",
            Check::Run => "run",
        }
    }
}

/// One thing an integrity check found wrong: the check, the event (`seq`) or the account it is
/// about, if any, and what.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub check: Check,
    pub seq: Option<u64>,
    pub account_id: Option<String>,
    pub detail: String,
}

impl Finding {
    fn new(check: Check, detail: impl Into<String>) -> Finding {
        Finding {
            check,
            seq: None,
            account_id: None,
            detail: detail.into(),
        }
    }

    fn at_seq(self, seq: u64) -> Finding {
        Finding {
            seq: Some(seq),
            ..self
        }
    }

    fn of_account(self, id: impl std::fmt::Display) -> Finding {
        Finding {
            account_id: Some(id.to_string()),
            ..self
        }
    }

    /// As the run records it: `{"check", "detail"}` and `seq` or `account_id` when known.
    pub fn to_json(&self) -> Value {
        let mut finding = serde_json::Map::new();
        finding.insert("check".into(), Value::from(self.check.as_str()));
        if let Some(seq) = self.seq {
            finding.insert("seq".into(), Value::from(seq));
        }
        if let Some(id) = &self.account_id {
            finding.insert("account_id".into(), Value::from(id.as_str()));
        }
        finding.insert("detail".into(), Value::from(self.detail.as_str()));
        Value::Object(finding)
    }
}

/// The findings of one integrity check, at most `MAX` of them: a broken database could
/// otherwise produce one per row.
#[derive(Default)]
struct Findings(Vec<Finding>);

impl Findings {
    const MAX: usize = 100;

    fn push(&mut self, finding: Finding) {
        if self.0.len() < Self::MAX {
            self.0.push(finding);
        }
    }

    fn into_vec(self) -> Vec<Finding> {
        self.0
    }
}

/// §4.2 on the replayed ledger: per currency, the sums over all accounts in minor units (an
/// `i128`, so totals beyond 10^28 minor units are summed exactly, as `ledger-verify` does).
fn check_currencies_of_replay(book: &Book, findings: &mut Findings) {
    match book.currency_totals() {
        Ok(totals) => {
            for (currency, totals) in totals.iter().filter(|(_, totals)| !totals.is_balanced()) {
                findings.push(Finding::new(
                    Check::BalancedCurrencies,
                    format!("{currency} in the replayed journal: {totals}"),
                ));
            }
        }
        Err(detail) => findings.push(Finding::new(Check::BalancedCurrencies, detail)),
    }
}

fn check_chain_link(previous: &ChainHead, event: &JournalEvent, findings: &mut Findings) {
    if event.seq != previous.seq + 1 {
        findings.push(
            Finding::new(
                Check::Chain,
                format!(
                    "seq {} follows seq {}: the journal has a gap or a swap",
                    event.seq, previous.seq
                ),
            )
            .at_seq(event.seq),
        );
    } else if event.prev_hash != previous.hash {
        findings.push(
            Finding::new(Check::Chain, "prev_hash is not the previous event's hash")
                .at_seq(event.seq),
        );
    }
    if event.computed_hash() != event.hash {
        findings.push(
            Finding::new(
                Check::Chain,
                "hash is not SHA-256 of the canonical event: the event was altered",
            )
            .at_seq(event.seq),
        );
    }
}

/// Applies the event to the replay, and says whether it was applied. At the first fault,
/// records it (unless it is a break of the chain, which `check_chain_link` names) and stops
/// replaying.
fn replay_event(
    replayer: &mut Option<Replayer>,
    event: &JournalEvent,
    findings: &mut Findings,
) -> bool {
    let Some(replay) = replayer.as_mut() else {
        return false;
    };
    if let Err(fault) = replay.push(event) {
        let chain_break = matches!(
            fault.kind,
            FaultKind::SeqOutOfOrder { .. } | FaultKind::PrevHashMismatch | FaultKind::HashMismatch
        );
        if !chain_break {
            findings.push(
                Finding::new(
                    Check::Replay,
                    format!("the journal does not replay: {fault}"),
                )
                .at_seq(fault.seq),
            );
        }
        *replayer = None;
        return false;
    }
    true
}

impl Auditor<'_> {
    /// Runs the integrity check and records it as a run (`running`, then `passed` or `failed`).
    pub async fn record_integrity_check(
        &self,
        ledger: &LedgerRecord,
    ) -> Result<crate::storage::audit::IntegrityRun, StorageError> {
        let id = uuid::Uuid::now_v7();
        self.storage
            .start_integrity_run(ledger.id, id, crate::writer::now())
            .await?;
        let (checked_seq, findings) = match self.integrity_check(ledger).await {
            Ok(result) => result,
            Err(AuditError::Storage(error)) => return Err(error),
            Err(other) => (0, vec![Finding::new(Check::Run, other.to_string())]),
        };
        let passed = findings.is_empty();
        metrics::gauge!("ledger_integrity_check_passed", "ledger" => ledger.name.to_string())
            .set(if passed { 1.0 } else { 0.0 });
        if passed {
            let name = ledger.name.to_string();
            metrics::gauge!(LAST_PASSED_CHECK_GAUGE, "ledger" => name)
                .set(unix_seconds(crate::writer::now()));
        }
        metrics::counter!(
            "ledger_integrity_checks_total",
            "status" => if passed { "passed" } else { "failed" }
        )
        .increment(1);
        if !passed {
            tracing::error!(
                ledger = %ledger.name,
                findings = findings.len(),
                "integrity check failed"
            );
        }
        self.storage
            .finish_integrity_run(
                ledger.id,
                id,
                passed,
                checked_seq,
                &Value::Array(findings.iter().map(Finding::to_json).collect()),
                crate::writer::now(),
            )
            .await
    }
}

/// Lines are sent in chunks of about this size: one HTTP chunk and one channel hand-off per line
/// would cost more than encoding the line.
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;

/// Writes export lines to the sink, hashing those before the manifest.
struct ExportWriter {
    sink: mpsc::Sender<Vec<u8>>,
    chunk: Vec<u8>,
    content: ContentHasher,
    events: u64,
    balances: u64,
    /// The time of the last event written.
    last_at: Option<Timestamp>,
}

impl ExportWriter {
    async fn line(&mut self, line: &Line) -> Result<(), AuditError> {
        let bytes = line.encode();
        self.content.add_line(&bytes);
        self.send(bytes).await
    }

    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), AuditError> {
        self.chunk.extend_from_slice(&bytes);
        self.chunk.push(b'\n');
        if self.chunk.len() >= EXPORT_CHUNK_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), AuditError> {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(EXPORT_CHUNK_BYTES * 2));
        self.sink
            .send(chunk)
            .await
            .map_err(|_| AuditError::ClientGone)
    }
}

/// When each ledger's last checkpoint was signed, and its last integrity check passed.
const LAST_CHECKPOINT_GAUGE: &str = "ledger_last_checkpoint_timestamp_seconds";
const LAST_PASSED_CHECK_GAUGE: &str = "ledger_last_passed_integrity_check_timestamp_seconds";

/// A time as the seconds since the Unix epoch, as Prometheus timestamps are (alert on
/// `time() - ledger_last_checkpoint_timestamp_seconds > …`).
fn unix_seconds(at: Timestamp) -> f64 {
    at.unix_micros() as f64 / 1e6
}
