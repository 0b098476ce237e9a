//! An independent model of what the ledger promises about accounts and transfers (SPEC §3, §4),
//! written for the history checker from the contract alone: integer minor units (`i128`), no
//! `rust_decimal`, nothing of `ledger::domain`. It answers two questions:
//!
//! - `apply`: is this journal event legal in the current state, and what does it change?
//! - `would_refuse`: would this request be refused in the current state, and with which code?
//!
//! The checker replays the journal through `apply` and asks `would_refuse` at the points where a
//! refused request may have been decided.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constraint {
    None,
    /// pending debits + posted debits ≤ posted credits
    DebitsWithinCredits,
    /// pending credits + posted credits ≤ posted debits
    CreditsWithinDebits,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub code: String,
    pub currency: String,
    pub scale: u32,
    pub constraint: Constraint,
    pub posted_debits: i128,
    pub posted_credits: i128,
    pub pending_debits: i128,
    pub pending_credits: i128,
}

impl Account {
    fn holds(&self) -> bool {
        let non_negative = [
            self.posted_debits,
            self.posted_credits,
            self.pending_debits,
            self.pending_credits,
        ]
        .iter()
        .all(|value| *value >= 0);
        non_negative
            && match self.constraint {
                Constraint::None => true,
                Constraint::DebitsWithinCredits => {
                    self.pending_debits + self.posted_debits <= self.posted_credits
                }
                Constraint::CreditsWithinDebits => {
                    self.pending_credits + self.posted_credits <= self.posted_debits
                }
            }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Posted,
    Voided,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Posted => "posted",
            State::Voided => "voided",
        }
    }
}

/// A transfer as a client asked for it (a request body's item, or a `transfer_created` event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTransfer {
    /// `None` in a request that lets the service choose the id.
    pub id: Option<Uuid>,
    pub debit: Uuid,
    pub credit: Uuid,
    pub amount: i128,
    pub currency: String,
    pub pending: bool,
    pub timeout_seconds: Option<u64>,
    pub code: Option<String>,
    pub reference: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub id: Uuid,
    pub debit: Uuid,
    pub credit: Uuid,
    pub amount: i128,
    pub currency: String,
    pub scale: u32,
    pub pending: bool,
    pub timeout_seconds: Option<u64>,
    pub code: Option<String>,
    pub reference: Option<String>,
    pub reverses: Option<Uuid>,
    pub state: State,
    pub posted_amount: i128,
    pub reversed_amount: i128,
    pub created_seq: u64,
    /// Every state the transfer has been in, in order.
    pub states_seen: Vec<State>,
}

impl Transfer {
    fn was_created_as(&self, new: &NewTransfer) -> bool {
        self.debit == new.debit
            && self.credit == new.credit
            && self.amount == new.amount
            && self.currency == new.currency
            && self.pending == new.pending
            && self.timeout_seconds == new.timeout_seconds
            && self.code == new.code
            && self.reference == new.reference
    }
}

/// Why the model refuses a request: the code, and the details a problem document names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub account: Option<Uuid>,
    pub index: Option<usize>,
    pub from: Option<&'static str>,
}

impl Refusal {
    fn code(code: &'static str) -> Refusal {
        Refusal {
            code,
            account: None,
            index: None,
            from: None,
        }
    }
}

/// A request the model can judge.
#[derive(Clone, Debug)]
pub enum Action {
    Create(NewTransfer),
    CreateAtomically(Vec<NewTransfer>),
    Post { id: Uuid, amount: Option<i128> },
    Void { id: Uuid },
    Reverse { id: Uuid, amount: Option<i128> },
}

/// One journal event, as the API lists it.
#[derive(Clone, Debug)]
pub struct Event {
    pub seq: u64,
    pub kind: String,
    pub at: String,
    pub actor: String,
    pub request_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub data: Value,
}

impl Event {
    pub fn from_json(value: &Value) -> Result<Event, String> {
        let text = |key: &str| value[key].as_str().map(str::to_owned);
        Ok(Event {
            seq: value["seq"].as_u64().ok_or("an event without seq")?,
            kind: text("type").ok_or("an event without type")?,
            at: text("at").ok_or("an event without at")?,
            actor: text("actor").ok_or("an event without actor")?,
            request_id: text("request_id"),
            idempotency_key: text("idempotency_key"),
            data: value["data"].clone(),
        })
    }
}

#[derive(Clone, Debug, Default)]
pub struct Model {
    pub ledger: Option<String>,
    pub accounts: BTreeMap<Uuid, Account>,
    pub transfers: HashMap<Uuid, Transfer>,
    pub last_seq: u64,
    last_at: String,
}

/// Parses a decimal string at exactly `scale` fraction digits into minor units.
pub fn parse_minor(text: &str, scale: u32) -> Result<i128, String> {
    let bad = || format!("{text:?} is not an amount at scale {scale}");
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() != scale as usize
        || (scale > 0 && !text.contains('.'))
        || (whole.len() > 1 && whole.starts_with('0'))
    {
        return Err(bad());
    }
    let digits = format!("{whole}{fraction}");
    digits.parse::<i128>().map_err(|_| bad())
}

/// Minor units as a decimal string at `scale` (`1050`, 2 → `"10.50"`).
pub fn format_minor(value: i128, scale: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{magnitude}");
    }
    let unit = 10u128.pow(scale);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / unit,
        magnitude % unit,
        width = scale as usize
    )
}

fn uuid_at(data: &Value, key: &str) -> Result<Uuid, String> {
    data[key]
        .as_str()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| format!("data.{key} is not a UUID: {}", data[key]))
}

fn optional_text(data: &Value, key: &str) -> Option<String> {
    data[key].as_str().map(str::to_owned)
}

impl Model {
    pub fn new() -> Model {
        Model::default()
    }

    pub fn scale_of(&self, currency: &str) -> u32 {
        self.accounts
            .values()
            .find(|account| account.currency == currency)
            .map_or(2, |account| account.scale)
    }

    /// The two accounts after moving the deltas (debit side of one, credit side of the other),
    /// or the refusal: the debit account is checked first, as the contract's engine does.
    fn moved(
        &self,
        debit: Uuid,
        credit: Uuid,
        pending_delta: i128,
        posted_delta: i128,
    ) -> Result<(Account, Account), Refusal> {
        let find = |id: Uuid| {
            self.accounts.get(&id).cloned().ok_or(Refusal {
                account: Some(id),
                ..Refusal::code("account_not_found")
            })
        };
        let mut debit_account = find(debit)?;
        let mut credit_account = find(credit)?;
        debit_account.pending_debits += pending_delta;
        debit_account.posted_debits += posted_delta;
        if !debit_account.holds() {
            return Err(Refusal {
                account: Some(debit),
                ..Refusal::code("insufficient_funds")
            });
        }
        credit_account.pending_credits += pending_delta;
        credit_account.posted_credits += posted_delta;
        if !credit_account.holds() {
            return Err(Refusal {
                account: Some(credit),
                ..Refusal::code("credits_exceed_debits")
            });
        }
        Ok((debit_account, credit_account))
    }

    fn check_new(&self, new: &NewTransfer) -> Result<(), Refusal> {
        if new.debit == new.credit {
            return Err(Refusal::code("same_debit_and_credit_account"));
        }
        for id in [new.debit, new.credit] {
            let account = self.accounts.get(&id).ok_or(Refusal {
                account: Some(id),
                ..Refusal::code("account_not_found")
            })?;
            if account.currency != new.currency {
                return Err(Refusal {
                    account: Some(id),
                    ..Refusal::code("currency_mismatch")
                });
            }
        }
        if new.amount <= 0 {
            return Err(Refusal::code("invalid_amount"));
        }
        if new.timeout_seconds.is_some() && !new.pending {
            return Err(Refusal::code("timeout_requires_pending"));
        }
        Ok(())
    }

    /// Creates a transfer in this state (used on a scratch copy by `would_refuse`, and by
    /// `apply`). `Ok(false)`: it existed already with the same fields (a natural-key retry).
    fn create(&mut self, new: &NewTransfer, seq: u64) -> Result<bool, Refusal> {
        let id = new.id.unwrap_or_else(Uuid::nil);
        if let Some(existing) = new.id.and_then(|id| self.transfers.get(&id)) {
            return if existing.was_created_as(new) {
                Ok(false)
            } else {
                Err(Refusal::code("transfer_exists_with_different_fields"))
            };
        }
        self.check_new(new)?;
        let (pending_delta, posted_delta) = if new.pending {
            (new.amount, 0)
        } else {
            (0, new.amount)
        };
        let (debit, credit) = self.moved(new.debit, new.credit, pending_delta, posted_delta)?;
        let scale = debit.scale;
        self.accounts.insert(new.debit, debit);
        self.accounts.insert(new.credit, credit);
        let state = if new.pending {
            State::Pending
        } else {
            State::Posted
        };
        self.transfers.insert(
            id,
            Transfer {
                id,
                debit: new.debit,
                credit: new.credit,
                amount: new.amount,
                currency: new.currency.clone(),
                scale,
                pending: new.pending,
                timeout_seconds: new.timeout_seconds,
                code: new.code.clone(),
                reference: new.reference.clone(),
                reverses: None,
                state,
                posted_amount: if new.pending { 0 } else { new.amount },
                reversed_amount: 0,
                created_seq: seq,
                states_seen: vec![state],
            },
        );
        Ok(true)
    }

    fn transfer(&self, id: Uuid) -> Result<&Transfer, Refusal> {
        self.transfers
            .get(&id)
            .ok_or(Refusal::code("transfer_not_found"))
    }

    fn post(&mut self, id: Uuid, amount: Option<i128>) -> Result<(), Refusal> {
        let transfer = self.transfer(id)?;
        if transfer.state != State::Pending {
            return Err(Refusal {
                from: Some(transfer.state.as_str()),
                ..Refusal::code("invalid_state_transition")
            });
        }
        let amount = amount.unwrap_or(transfer.amount);
        if amount <= 0 {
            return Err(Refusal::code("invalid_amount"));
        }
        if amount > transfer.amount {
            return Err(Refusal::code("post_amount_exceeds_pending"));
        }
        let (debit_id, credit_id, reserved) = (transfer.debit, transfer.credit, transfer.amount);
        let (debit, credit) = self.moved(debit_id, credit_id, -reserved, amount)?;
        self.accounts.insert(debit_id, debit);
        self.accounts.insert(credit_id, credit);
        let transfer = self.transfers.get_mut(&id).expect("found above");
        transfer.state = State::Posted;
        transfer.posted_amount = amount;
        transfer.states_seen.push(State::Posted);
        Ok(())
    }

    fn release(&mut self, id: Uuid, to: State) -> Result<(), Refusal> {
        let transfer = self.transfer(id)?;
        if transfer.state != State::Pending {
            return Err(Refusal {
                from: Some(transfer.state.as_str()),
                ..Refusal::code("invalid_state_transition")
            });
        }
        let (debit_id, credit_id, reserved) = (transfer.debit, transfer.credit, transfer.amount);
        let (debit, credit) = self.moved(debit_id, credit_id, -reserved, 0)?;
        self.accounts.insert(debit_id, debit);
        self.accounts.insert(credit_id, credit);
        let transfer = self.transfers.get_mut(&id).expect("found above");
        transfer.state = to;
        transfer.states_seen.push(to);
        Ok(())
    }

    /// Reverses `amount` (all that remains when `None`) of a posted transfer into a new transfer
    /// `new_id`, debit and credit swapped.
    fn reverse(
        &mut self,
        id: Uuid,
        amount: Option<i128>,
        new_id: Uuid,
        new: Option<&NewTransfer>,
        seq: u64,
    ) -> Result<(), Refusal> {
        let original = self.transfer(id)?.clone();
        if original.state != State::Posted {
            return Err(Refusal {
                from: Some(original.state.as_str()),
                ..Refusal::code("invalid_state_transition")
            });
        }
        let reversible = original.posted_amount - original.reversed_amount;
        let amount = amount.unwrap_or(reversible);
        if amount > reversible || amount <= 0 {
            return Err(Refusal::code("reversal_exceeds_posted_amount"));
        }
        if let Some(new) = new {
            let mirrors = new.debit == original.credit
                && new.credit == original.debit
                && new.currency == original.currency
                && !new.pending
                && new.timeout_seconds.is_none();
            if !mirrors {
                return Err(Refusal::code("reversal_does_not_mirror_original"));
            }
        }
        let (debit, credit) = self.moved(original.credit, original.debit, 0, amount)?;
        self.accounts.insert(original.credit, debit);
        self.accounts.insert(original.debit, credit);
        self.transfers
            .get_mut(&id)
            .expect("found above")
            .reversed_amount += amount;
        self.transfers.insert(
            new_id,
            Transfer {
                id: new_id,
                debit: original.credit,
                credit: original.debit,
                amount,
                currency: original.currency.clone(),
                scale: original.scale,
                pending: false,
                timeout_seconds: None,
                code: new.and_then(|new| new.code.clone()),
                reference: new.and_then(|new| new.reference.clone()),
                reverses: Some(id),
                state: State::Posted,
                posted_amount: amount,
                reversed_amount: 0,
                created_seq: seq,
                states_seen: vec![State::Posted],
            },
        );
        Ok(())
    }

    /// What the ledger must answer to `action` in this state: `None` when it would be accepted.
    pub fn would_refuse(&self, action: &Action) -> Option<Refusal> {
        let mut scratch = Model {
            ledger: None,
            accounts: self.accounts.clone(),
            transfers: HashMap::new(),
            last_seq: self.last_seq,
            last_at: String::new(),
        };
        let mut needed = |id: Uuid| {
            if let Some(transfer) = self.transfers.get(&id) {
                scratch.transfers.insert(id, transfer.clone());
            }
        };
        match action {
            Action::Create(new) => {
                new.id.into_iter().for_each(&mut needed);
                scratch.create(new, 0).err()
            }
            Action::CreateAtomically(items) => {
                items.iter().filter_map(|item| item.id).for_each(needed);
                items.iter().enumerate().find_map(|(index, item)| {
                    scratch.create(item, 0).err().map(|refusal| Refusal {
                        index: Some(index),
                        ..refusal
                    })
                })
            }
            Action::Post { id, amount } => {
                needed(*id);
                scratch.post(*id, *amount).err()
            }
            Action::Void { id } => {
                needed(*id);
                scratch.release(*id, State::Voided).err()
            }
            Action::Reverse { id, amount } => {
                needed(*id);
                scratch.reverse(*id, *amount, Uuid::nil(), None, 0).err()
            }
        }
    }

    /// Applies one journal event, or says why it is not legal here.
    pub fn apply(&mut self, event: &Event) -> Result<(), String> {
        if event.seq != self.last_seq + 1 {
            return Err(format!(
                "seq {} follows seq {}: a gap or a repeat",
                event.seq, self.last_seq
            ));
        }
        if event.at < self.last_at {
            return Err(format!(
                "time went backwards: {} after {}",
                event.at, self.last_at
            ));
        }
        let data = &event.data;
        let refused = |refusal: Refusal| {
            format!(
                "{} is not legal here: the model refuses it ({refusal:?})",
                event.kind
            )
        };
        match event.kind.as_str() {
            "ledger_created" => {
                if event.seq != 1 {
                    return Err("ledger_created after the genesis".into());
                }
                self.ledger = optional_text(data, "name");
            }
            _ if self.ledger.is_none() => return Err("no genesis event first".into()),
            "account_opened" => {
                let id = uuid_at(data, "id")?;
                if self.accounts.contains_key(&id) {
                    return Err(format!("account {id} opened twice"));
                }
                let flag = |key: &str| data[key].as_bool().unwrap_or(false);
                let constraint = match (
                    flag("debits_must_not_exceed_credits"),
                    flag("credits_must_not_exceed_debits"),
                ) {
                    (false, false) => Constraint::None,
                    (true, false) => Constraint::DebitsWithinCredits,
                    (false, true) => Constraint::CreditsWithinDebits,
                    (true, true) => return Err("an account with both constraints".into()),
                };
                self.accounts.insert(
                    id,
                    Account {
                        code: optional_text(data, "code").unwrap_or_default(),
                        currency: optional_text(data, "currency").unwrap_or_default(),
                        scale: data["scale"].as_u64().ok_or("account without scale")? as u32,
                        constraint,
                        posted_debits: 0,
                        posted_credits: 0,
                        pending_debits: 0,
                        pending_credits: 0,
                    },
                );
            }
            "transfer_created" => {
                let new = self.new_transfer_in(data)?;
                let id = new.id.expect("events name their transfer");
                if self.transfers.contains_key(&id) {
                    return Err(format!("transfer {id} created twice"));
                }
                self.create(&new, event.seq).map_err(refused)?;
            }
            "transfer_posted" => {
                let id = uuid_at(data, "transfer_id")?;
                let scale = self
                    .transfers
                    .get(&id)
                    .map(|transfer| transfer.scale)
                    .ok_or_else(|| format!("post of unknown transfer {id}"))?;
                let amount = parse_minor(data["amount"].as_str().unwrap_or(""), scale)?;
                self.post(id, Some(amount)).map_err(refused)?;
            }
            "transfer_voided" => {
                let id = uuid_at(data, "transfer_id")?;
                self.release(id, State::Voided).map_err(refused)?;
            }
            "transfer_expired" => {
                return Err(
                    "transfer_expired: no deadline of this workload can have passed \
                     (timeouts are an hour)"
                        .into(),
                );
            }
            "transfer_reversed" => {
                let new = self.new_transfer_in(data)?;
                let original = uuid_at(data, "reverses")?;
                let id = new.id.expect("events name their transfer");
                if self.transfers.contains_key(&id) {
                    return Err(format!("transfer {id} created twice"));
                }
                self.reverse(original, Some(new.amount), id, Some(&new), event.seq)
                    .map_err(refused)?;
            }
            other => return Err(format!("an event this workload never causes: {other}")),
        }
        self.last_seq = event.seq;
        self.last_at = event.at.clone();
        Ok(())
    }

    fn new_transfer_in(&self, data: &Value) -> Result<NewTransfer, String> {
        let currency = optional_text(data, "currency").ok_or("transfer without currency")?;
        let scale = self.scale_of(&currency);
        Ok(NewTransfer {
            id: Some(uuid_at(data, "id")?),
            debit: uuid_at(data, "debit_account_id")?,
            credit: uuid_at(data, "credit_account_id")?,
            amount: parse_minor(data["amount"].as_str().unwrap_or(""), scale)?,
            currency,
            pending: data["pending"].as_bool().unwrap_or(false),
            timeout_seconds: data["timeout_seconds"].as_u64(),
            code: optional_text(data, "code"),
            reference: optional_text(data, "reference"),
        })
    }

    /// Per currency: Σ posted debits = Σ posted credits and Σ pending debits = Σ pending
    /// credits.
    pub fn unbalanced_currencies(&self) -> Vec<String> {
        let mut totals: BTreeMap<&str, [i128; 4]> = BTreeMap::new();
        for account in self.accounts.values() {
            let entry = totals.entry(&account.currency).or_default();
            entry[0] += account.posted_debits;
            entry[1] += account.posted_credits;
            entry[2] += account.pending_debits;
            entry[3] += account.pending_credits;
        }
        totals
            .into_iter()
            .filter(|(_, [pd, pc, nd, nc])| pd != pc || nd != nc)
            .map(|(currency, _)| currency.to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(seq: u64, kind: &str, data: Value) -> Event {
        Event {
            seq,
            kind: kind.into(),
            at: format!("2026-01-01T00:00:{seq:02}.000000Z"),
            actor: "test".into(),
            request_id: None,
            idempotency_key: None,
            data,
        }
    }

    fn account(seq: u64, id: Uuid, constrained: bool) -> Event {
        event(
            seq,
            "account_opened",
            json!({"id": id, "code": format!("a{seq}"), "currency": "EUR", "scale": 2,
                   "normal_side": "credit", "debits_must_not_exceed_credits": constrained,
                   "credits_must_not_exceed_debits": false, "metadata": {}}),
        )
    }

    fn created(
        seq: u64,
        id: Uuid,
        debit: Uuid,
        credit: Uuid,
        amount: &str,
        pending: bool,
    ) -> Event {
        event(
            seq,
            "transfer_created",
            json!({"id": id, "debit_account_id": debit, "credit_account_id": credit,
                   "amount": amount, "currency": "EUR", "code": null, "reference": null,
                   "description": null, "metadata": {}, "pending": pending,
                   "timeout_seconds": null}),
        )
    }

    fn two_accounts() -> (Model, Uuid, Uuid) {
        let (world, wallet) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut model = Model::new();
        model
            .apply(&event(1, "ledger_created", json!({"name": "m"})))
            .unwrap();
        model.apply(&account(2, world, false)).unwrap();
        model.apply(&account(3, wallet, true)).unwrap();
        (model, world, wallet)
    }

    fn new(debit: Uuid, credit: Uuid, amount: i128) -> NewTransfer {
        NewTransfer {
            id: None,
            debit,
            credit,
            amount,
            currency: "EUR".into(),
            pending: false,
            timeout_seconds: None,
            code: None,
            reference: None,
        }
    }

    #[test]
    fn amounts_are_exact_at_the_currency_scale() {
        assert_eq!(parse_minor("10.50", 2), Ok(1050));
        assert_eq!(parse_minor("0.01", 2), Ok(1));
        assert!(parse_minor("1.5", 2).is_err());
        assert!(parse_minor("01.50", 2).is_err());
        assert!(parse_minor("1", 2).is_err());
        assert_eq!(format_minor(1050, 2), "10.50");
        assert_eq!(format_minor(7, 2), "0.07");
        assert_eq!(format_minor(7, 0), "7");
    }

    #[test]
    fn the_model_refuses_an_overdraft_and_accepts_what_is_covered() {
        let (mut model, world, wallet) = two_accounts();
        let overdraft = Action::Create(new(wallet, world, 1));
        assert_eq!(
            model.would_refuse(&overdraft).map(|refusal| refusal.code),
            Some("insufficient_funds")
        );
        model
            .apply(&created(
                4,
                Uuid::from_u128(10),
                world,
                wallet,
                "5.00",
                false,
            ))
            .unwrap();
        assert_eq!(model.would_refuse(&overdraft), None);
        let batch =
            Action::CreateAtomically(vec![new(wallet, world, 300), new(wallet, world, 300)]);
        let refusal = model.would_refuse(&batch).unwrap();
        assert_eq!(
            (refusal.code, refusal.index),
            ("insufficient_funds", Some(1))
        );
        assert!(model
            .apply(&created(
                5,
                Uuid::from_u128(11),
                wallet,
                world,
                "5.01",
                false
            ))
            .is_err());
    }

    #[test]
    fn a_pending_transfer_is_resolved_at_most_once() {
        let (mut model, world, wallet) = two_accounts();
        let id = Uuid::from_u128(20);
        model
            .apply(&created(4, id, world, wallet, "9.00", true))
            .unwrap();
        assert_eq!(model.accounts[&wallet].pending_credits, 900);
        model
            .apply(&event(
                5,
                "transfer_posted",
                json!({"transfer_id": id, "amount": "4.00"}),
            ))
            .unwrap();
        assert_eq!(model.accounts[&wallet].posted_credits, 400);
        assert_eq!(model.accounts[&wallet].pending_credits, 0);
        let void = model.would_refuse(&Action::Void { id }).unwrap();
        assert_eq!(
            (void.code, void.from),
            ("invalid_state_transition", Some("posted"))
        );
        assert!(model
            .apply(&event(6, "transfer_voided", json!({"transfer_id": id})))
            .is_err());
        assert!(model.unbalanced_currencies().is_empty());
    }
}
