//! The history checker, in the spirit of Jepsen's analysis of TigerBeetle: the journal is the
//! serial order the ledger claims; the recorded history is what clients saw. The checker ties
//! every journal event to the request that caused it (its `X-Request-Id` and Idempotency-Key),
//! replays the journal through the independent [`Model`], and requires that
//!
//! - every event is legal in the model when it happens, and was sent by a client (no phantom);
//! - every request is applied at most once (by key, by transfer id), atomically, and only if its
//!   final answer was a success; every success is in the journal (nothing lost);
//! - every event lies where real time allows it: after everything acknowledged before its
//!   request was sent, before everything sent after its success was received;
//! - every success answer equals the model's state at that point, and every refusal is one the
//!   model gives at some point of the serial order the request's real-time window allows;
//! - replays of a key are byte-identical, reuses of a key or an id with another body are refused;
//! - the final balances and transfers the API shows are the model's.

use std::collections::HashMap;

use serde_json::Value;
use uuid::Uuid;

use super::history::{Kind, Outcome, Probe, Request};
use super::model::{
    format_minor, parse_minor, Action, Event, Model, NewTransfer, Refusal, Transfer,
};

#[derive(Debug, Default)]
pub struct Verdict {
    pub events: usize,
    pub applied_groups: usize,
    pub lost: Vec<String>,
    pub applied_twice: Vec<String>,
    pub phantom: Vec<String>,
    pub refused_but_applied: Vec<String>,
    pub unresolved: Vec<String>,
    /// Illegal events, answers that differ from the model, final state that differs.
    pub model: Vec<String>,
    pub unjustified_refusals: Vec<String>,
    /// Events outside the real-time window of their request.
    pub order: Vec<String>,
    pub idempotence: Vec<String>,
    /// Attempts whose effect committed but which were answered with an error status.
    pub committed_but_answered_error: Vec<String>,
    /// Committed by an attempt whose answer never arrived: the retry got the replay.
    pub lost_acks: usize,
    pub refusals_justified: usize,
    pub answers_checked: usize,
    pub probes_checked: usize,
}

impl Verdict {
    pub fn violations(&self) -> usize {
        self.lost.len()
            + self.applied_twice.len()
            + self.phantom.len()
            + self.refused_but_applied.len()
            + self.unresolved.len()
            + self.model.len()
            + self.unjustified_refusals.len()
            + self.order.len()
            + self.idempotence.len()
            + self.committed_but_answered_error.len()
    }

    pub fn summary(&self) -> Vec<(&'static str, &Vec<String>)> {
        vec![
            ("lost", &self.lost),
            ("applied twice", &self.applied_twice),
            ("phantom", &self.phantom),
            ("refused but applied", &self.refused_but_applied),
            ("unresolved", &self.unresolved),
            ("model", &self.model),
            ("unjustified refusals", &self.unjustified_refusals),
            ("real-time order", &self.order),
            ("idempotence", &self.idempotence),
            (
                "committed but answered with an error",
                &self.committed_but_answered_error,
            ),
        ]
    }
}

/// Requests that share an Idempotency-Key (or, without one, a transfer id): one logical
/// request, its probes and duplicates.
#[derive(Debug, Default)]
struct Group {
    name: String,
    members: Vec<usize>,
    original: Option<usize>,
    /// Indexes into the journal.
    events: Vec<usize>,
    /// The request and attempt that committed it.
    committed_by: Option<(usize, usize)>,
}

fn group_key(request: &Request) -> String {
    match &request.key {
        Some(key) => format!("key:{key}"),
        None => format!(
            "id:{}",
            request.body["id"].as_str().unwrap_or(&request.name)
        ),
    }
}

fn uuid(value: &Value) -> Option<Uuid> {
    value.as_str().and_then(|text| text.parse().ok())
}

/// A request body's transfer, as the model reads it.
fn new_transfer(body: &Value) -> Option<NewTransfer> {
    Some(NewTransfer {
        id: uuid(&body["id"]),
        debit: uuid(&body["debit_account_id"])?,
        credit: uuid(&body["credit_account_id"])?,
        amount: parse_minor(body["amount"].as_str()?, 2).ok()?,
        currency: body["currency"].as_str()?.to_owned(),
        pending: body["pending"].as_bool().unwrap_or(false),
        timeout_seconds: body["timeout_seconds"].as_u64(),
        code: body["code"].as_str().map(str::to_owned),
        reference: body["reference"].as_str().map(str::to_owned),
    })
}

fn optional_amount(body: &Value) -> Option<i128> {
    body["amount"]
        .as_str()
        .and_then(|text| parse_minor(text, 2).ok())
}

/// What the model is asked about a request.
fn action_of(request: &Request) -> Option<Action> {
    match &request.kind {
        Kind::Transfer => new_transfer(&request.body).map(Action::Create),
        Kind::Batch => request.body["transfers"]
            .as_array()?
            .iter()
            .map(new_transfer)
            .collect::<Option<Vec<_>>>()
            .map(Action::CreateAtomically),
        Kind::Post { target } => Some(Action::Post {
            id: *target,
            amount: optional_amount(&request.body),
        }),
        Kind::Void { target } => Some(Action::Void { id: *target }),
        Kind::Reverse { target } => Some(Action::Reverse {
            id: *target,
            amount: optional_amount(&request.body),
        }),
        _ => None,
    }
}

/// Whether the model's refusal is the one the service answered.
fn same_refusal(answer: &Value, refusal: &Refusal) -> bool {
    answer["code"].as_str() == Some(refusal.code)
        && answer
            .get("account_id")
            .is_none_or(|account| uuid(account) == refusal.account)
        && answer
            .get("index")
            .is_none_or(|index| index.as_u64().map(|i| i as usize) == refusal.index)
        && answer
            .get("from")
            .is_none_or(|from| from.as_str() == refusal.from)
}

/// Differences between a transfer as the API shows it and the model's.
fn transfer_differences(body: &Value, model: &Transfer, immutable_only: bool) -> Vec<String> {
    let scale = model.scale;
    let text = |value: &Option<String>| value.clone().map_or(Value::Null, Value::String);
    let mut expected = vec![
        ("id", Value::String(model.id.to_string())),
        ("debit_account_id", Value::String(model.debit.to_string())),
        ("credit_account_id", Value::String(model.credit.to_string())),
        ("amount", Value::String(format_minor(model.amount, scale))),
        ("currency", Value::String(model.currency.clone())),
        ("pending", Value::Bool(model.pending)),
        ("journal_seq", Value::from(model.created_seq)),
        ("reference", text(&model.reference)),
        ("code", text(&model.code)),
        (
            "reverses",
            model
                .reverses
                .map_or(Value::Null, |id| Value::String(id.to_string())),
        ),
    ];
    if !immutable_only {
        expected.extend([
            ("state", Value::String(model.state.as_str().into())),
            (
                "posted_amount",
                Value::String(format_minor(model.posted_amount, scale)),
            ),
            (
                "reversed_amount",
                Value::String(format_minor(model.reversed_amount, scale)),
            ),
        ]);
    }
    let mut differences: Vec<String> = expected
        .into_iter()
        .filter(|(field, value)| &body[*field] != value)
        .map(|(field, value)| format!("{field} is {} where the model has {value}", body[field]))
        .collect();
    if immutable_only {
        let seen = model
            .states_seen
            .iter()
            .any(|state| body["state"] == state.as_str());
        if !seen {
            differences.push(format!(
                "state {} is none the transfer was ever in ({:?})",
                body["state"], model.states_seen
            ));
        }
    }
    differences
}

/// Bounds from real time: `floor(t)` is the last seq acknowledged before `t` (so a request
/// sent at `t` was decided after it); `ceiling(t)` is just before the first seq of a request
/// sent after `t` (so a request answered at `t` was decided before it).
struct RealTime {
    acks: Vec<(u64, u64)>,
    sends: Vec<(u64, u64)>,
    last_seq: u64,
}

impl RealTime {
    fn new(mut acks: Vec<(u64, u64)>, mut sends: Vec<(u64, u64)>, last_seq: u64) -> RealTime {
        acks.sort_unstable();
        let mut running = 0;
        for ack in &mut acks {
            running = running.max(ack.1);
            ack.1 = running;
        }
        sends.sort_unstable();
        let mut running = u64::MAX;
        for send in sends.iter_mut().rev() {
            running = running.min(send.1);
            send.1 = running;
        }
        RealTime {
            acks,
            sends,
            last_seq,
        }
    }

    fn floor(&self, t: u64) -> u64 {
        let before = self.acks.partition_point(|(at, _)| *at < t);
        if before == 0 {
            0
        } else {
            self.acks[before - 1].1
        }
    }

    fn ceiling(&self, t: u64) -> u64 {
        let first_after = self.sends.partition_point(|(at, _)| *at <= t);
        self.sends
            .get(first_after)
            .map_or(self.last_seq, |(_, seq)| seq - 1)
    }
}

pub fn check(
    requests: &[Request],
    journal: &[Value],
    api_accounts: &[Value],
    api_transfers: &[Value],
) -> Verdict {
    let mut verdict = Verdict {
        events: journal.len(),
        ..Verdict::default()
    };
    let events: Vec<Event> = journal
        .iter()
        .filter_map(|value| match Event::from_json(value) {
            Ok(event) => Some(event),
            Err(error) => {
                verdict
                    .model
                    .push(format!("unreadable event {value}: {error}"));
                None
            }
        })
        .collect();
    let by_name: HashMap<&str, usize> = requests
        .iter()
        .enumerate()
        .map(|(index, request)| (request.name.as_str(), index))
        .collect();

    // Requests into groups.
    let mut groups: Vec<Group> = Vec::new();
    let mut group_by_key: HashMap<String, usize> = HashMap::new();
    let mut group_of_request = vec![0; requests.len()];
    for (index, request) in requests.iter().enumerate() {
        let key = group_key(request);
        let group = *group_by_key.entry(key).or_insert_with(|| {
            groups.push(Group::default());
            groups.len() - 1
        });
        group_of_request[index] = group;
        groups[group].members.push(index);
        if request.probe.is_none() {
            if groups[group].original.is_some() {
                verdict.model.push(format!(
                    "harness: two original requests share a key ({})",
                    request.name
                ));
            }
            groups[group].original = Some(index);
            groups[group].name = request.name.clone();
        }
        if request.fin.is_none() {
            verdict.unresolved.push(format!(
                "{} ({} attempts, the last: {:?})",
                request.name,
                request.attempts.len(),
                request.attempts.last().map(|attempt| &attempt.outcome)
            ));
        }
    }

    // Events to requests.
    let mut group_of_event: Vec<Option<usize>> = vec![None; events.len()];
    let mut transfer_ids: HashMap<Uuid, u64> = HashMap::new();
    for (position, event) in events.iter().enumerate() {
        if matches!(
            event.kind.as_str(),
            "transfer_created" | "transfer_reversed"
        ) {
            if let Some(id) = uuid(&event.data["id"]) {
                if let Some(first) = transfer_ids.insert(id, event.seq) {
                    verdict.applied_twice.push(format!(
                        "transfer {id} created at seq {first} and again at seq {}",
                        event.seq
                    ));
                }
            }
        }
        let attributed = event
            .request_id
            .as_deref()
            .and_then(Request::attempt_of)
            .and_then(|(name, attempt)| Some((*by_name.get(name)?, attempt)));
        let Some((request, attempt)) = attributed else {
            verdict.phantom.push(format!(
                "seq {} {} (request id {:?}, key {:?}, actor {}) was sent by no client",
                event.seq, event.kind, event.request_id, event.idempotency_key, event.actor
            ));
            continue;
        };
        if event.idempotency_key != requests[request].key {
            verdict.phantom.push(format!(
                "seq {} names request {} but Idempotency-Key {:?} where the request had {:?}",
                event.seq, requests[request].name, event.idempotency_key, requests[request].key
            ));
        }
        let group = group_of_request[request];
        group_of_event[position] = Some(group);
        let group = &mut groups[group];
        group.events.push(position);
        match group.committed_by {
            None => group.committed_by = Some((request, attempt)),
            Some(first) if first != (request, attempt) => {
                verdict.applied_twice.push(format!(
                    "{}: applied by {}.{} and again by {}.{} (seq {})",
                    group.name,
                    requests[first.0].name,
                    first.1,
                    requests[request].name,
                    attempt,
                    event.seq
                ));
            }
            Some(_) => {}
        }
    }

    // The shape of every group's application.
    for group in &groups {
        let Some(original) = group.original.map(|index| &requests[index]) else {
            verdict.model.push(format!(
                "harness: a group without original ({})",
                group.name
            ));
            continue;
        };
        let (expected, kind) = original.kind.expected_events(&original.body);
        let fin = original.fin.as_ref();
        if group.events.is_empty() {
            if expected > 0 && fin.is_some_and(|fin| fin.is_success()) {
                verdict.lost.push(format!(
                    "{} was answered {} but is not in the journal",
                    group.name,
                    fin.map_or(0, |fin| fin.status)
                ));
            }
            continue;
        }
        verdict.applied_groups += 1;
        if let Some(fin) = fin.filter(|fin| !fin.is_success()) {
            verdict.refused_but_applied.push(format!(
                "{} was answered {} {} but seq {} applied it",
                group.name,
                fin.status,
                fin.code(),
                events[group.events[0]].seq
            ));
        }
        if group.events.len() != expected {
            let text = format!(
                "{}: {} events where one application writes {expected}",
                group.name,
                group.events.len()
            );
            if group.events.len() > expected {
                verdict.applied_twice.push(text);
            } else {
                verdict.model.push(text);
            }
        }
        let seqs: Vec<u64> = group.events.iter().map(|&e| events[e].seq).collect();
        if seqs.windows(2).any(|pair| pair[1] != pair[0] + 1) {
            verdict.model.push(format!(
                "{}: its events are not contiguous ({seqs:?}): not atomic",
                group.name
            ));
        }
        for &position in &group.events {
            if events[position].kind != kind {
                verdict.model.push(format!(
                    "{}: seq {} is {} where {kind} was due",
                    group.name, events[position].seq, events[position].kind
                ));
            }
        }
        if let Some((member, attempt)) = group.committed_by {
            let member_request = &requests[member];
            if let Some((probe, _)) = &member_request.probe {
                if *probe != Probe::ConcurrentDuplicate {
                    verdict.applied_twice.push(format!(
                        "{}: the probe {} ({probe:?}) applied it",
                        group.name, member_request.name
                    ));
                }
            }
            match member_request.attempts.get(attempt.wrapping_sub(1)) {
                None => verdict.phantom.push(format!(
                    "{}: committed by attempt {attempt}, which was never sent",
                    group.name
                )),
                Some(sent) => {
                    if let Outcome::Response { status, code } = &sent.outcome {
                        // Only `commit_outcome_unknown` may answer a batch that committed: it
                        // says the outcome is unknown, which is true. Any other error (say
                        // `503 not_committed`) would tell the client something false.
                        let honest = code.as_deref() == Some("commit_outcome_unknown");
                        if !(200..300).contains(status) && !honest {
                            verdict.committed_but_answered_error.push(format!(
                                "{}.{attempt} committed (seq {}) but was answered {status} {}",
                                member_request.name,
                                seqs[0],
                                code.as_deref().unwrap_or("")
                            ));
                        }
                    }
                    if attempt != member_request.attempts.len() {
                        verdict.lost_acks += 1;
                    }
                }
            }
        }
    }

    // Real-time bounds.
    let last_seq = events.last().map_or(0, |event| event.seq);
    let mut acks = Vec::new();
    let mut sends = Vec::new();
    for group in groups.iter().filter(|group| !group.events.is_empty()) {
        let first = events[group.events[0]].seq;
        let last = events[*group.events.last().expect("not empty")].seq;
        let acked = group
            .members
            .iter()
            .filter_map(|&m| requests[m].fin.as_ref())
            .filter(|fin| fin.is_success())
            .map(|fin| fin.at_us)
            .min();
        if let Some(at) = acked {
            acks.push((at, last));
        }
        if let Some((member, _)) = group.committed_by {
            sends.push((requests[member].invoked_us, first));
        }
    }
    let real_time = RealTime::new(acks, sends, last_seq);
    for group in groups.iter().filter(|group| !group.events.is_empty()) {
        let Some((member, _)) = group.committed_by else {
            continue;
        };
        let first = events[group.events[0]].seq;
        let last = events[*group.events.last().expect("not empty")].seq;
        let floor = real_time.floor(requests[member].invoked_us);
        if first <= floor {
            verdict.order.push(format!(
                "{}: seq {first} is not after seq {floor}, acknowledged before it was sent",
                group.name
            ));
        }
        let acked = group
            .members
            .iter()
            .filter_map(|&m| requests[m].fin.as_ref())
            .filter(|fin| fin.is_success())
            .map(|fin| fin.at_us)
            .min();
        if let Some(acked) = acked {
            let ceiling = real_time.ceiling(acked);
            if last > ceiling {
                verdict.order.push(format!(
                    "{}: seq {last} is after seq {}, sent after it was acknowledged",
                    group.name,
                    ceiling + 1
                ));
            }
        }
    }

    // Refusals to justify: (floor, ceiling, request).
    let mut refusals: Vec<(u64, u64, usize)> = Vec::new();
    for group in &groups {
        let Some(index) = group.original else {
            continue;
        };
        let request = &requests[index];
        let Some(fin) = request.fin.as_ref().filter(|fin| !fin.is_success()) else {
            continue;
        };
        if action_of(request).is_none() {
            verdict.unjustified_refusals.push(format!(
                "{} ({}) was refused {} {}",
                request.name,
                request.kind.label(),
                fin.status,
                fin.body
            ));
            continue;
        }
        let floor = real_time.floor(request.invoked_us);
        let ceiling = real_time.ceiling(fin.at_us);
        refusals.push((floor, ceiling, index));
    }
    refusals.sort_unstable();

    // The replay.
    let mut model = Model::new();
    let mut waiting = refusals.into_iter().peekable();
    let mut active: Vec<(u64, u64, usize)> = Vec::new();
    let mut justify = |model: &Model, at: u64, verdict: &mut Verdict, last: bool| {
        while let Some(&(floor, ceiling, index)) = waiting.peek() {
            if floor > at {
                break;
            }
            active.push((floor, ceiling, index));
            waiting.next();
        }
        active.retain(|&(floor, ceiling, index)| {
            let request = &requests[index];
            let fin = request.fin.as_ref().expect("refusals have answers");
            if at > ceiling || floor > ceiling {
                verdict.unjustified_refusals.push(format!(
                    "{} was refused {} {} but the model accepts it at every seq \
                     from {floor} to {ceiling}",
                    request.name, fin.status, fin.body
                ));
                return false;
            }
            let action = action_of(request).expect("checked above");
            if model
                .would_refuse(&action)
                .is_some_and(|refusal| same_refusal(&fin.json, &refusal))
            {
                verdict.refusals_justified += 1;
                return false;
            }
            if last {
                verdict.unjustified_refusals.push(format!(
                    "{} was refused {} {} but the model accepts it at every seq \
                     from {floor} to {ceiling}",
                    request.name, fin.status, fin.body
                ));
                return false;
            }
            true
        });
    };
    let mut deferred: Vec<(usize, Uuid)> = Vec::new();
    for (position, event) in events.iter().enumerate() {
        if let Err(error) = model.apply(event) {
            verdict
                .model
                .push(format!("seq {} {}: {error}", event.seq, event.kind));
            model.last_seq = event.seq;
        }
        let group_index = group_of_event[position];
        let ends_application =
            group_index.is_none_or(|group| groups[group].events.last() == Some(&position));
        if !ends_application {
            continue;
        }
        if let Some(group) = group_index.map(|group| &groups[group]) {
            check_application(
                group,
                requests,
                &events,
                &model,
                &mut verdict,
                &mut deferred,
            );
        }
        justify(&model, event.seq, &mut verdict, false);
    }
    justify(&model, u64::MAX - 1, &mut verdict, true);

    // Answers that depend on the whole history: a natural-key retry shows the transfer as it
    // was at some time.
    for (index, id) in deferred {
        let request = &requests[index];
        let fin = request.fin.as_ref().expect("deferred answers exist");
        match model.transfers.get(&id) {
            Some(transfer) => {
                for difference in transfer_differences(&fin.json, transfer, true) {
                    verdict
                        .model
                        .push(format!("{} (200): {difference}", request.name));
                }
                verdict.answers_checked += 1;
            }
            None => verdict.lost.push(format!(
                "{} was answered 200 for transfer {id}, which the journal never created",
                request.name
            )),
        }
    }

    check_probes(requests, &by_name, &model, &mut verdict);

    // The final state.
    for currency in model.unbalanced_currencies() {
        verdict
            .model
            .push(format!("the model's {currency} accounts do not balance"));
    }
    if api_accounts.len() != model.accounts.len() {
        verdict.model.push(format!(
            "the API lists {} accounts, the journal opened {}",
            api_accounts.len(),
            model.accounts.len()
        ));
    }
    for account in api_accounts {
        let Some(id) = uuid(&account["id"]) else {
            continue;
        };
        let Some(modelled) = model.accounts.get(&id) else {
            verdict
                .phantom
                .push(format!("account {id} exists but was never opened"));
            continue;
        };
        let fields = [
            ("posted_debits", modelled.posted_debits),
            ("posted_credits", modelled.posted_credits),
            ("pending_debits", modelled.pending_debits),
            ("pending_credits", modelled.pending_credits),
        ];
        for (field, value) in fields {
            let shown = account[field].as_str().unwrap_or("");
            if shown != format_minor(value, modelled.scale) {
                verdict.model.push(format!(
                    "account {} {field} is {shown}, the model's {}",
                    modelled.code,
                    format_minor(value, modelled.scale)
                ));
            }
        }
    }
    if api_transfers.len() != model.transfers.len() {
        verdict.model.push(format!(
            "the API lists {} transfers, the journal created {}",
            api_transfers.len(),
            model.transfers.len()
        ));
    }
    for transfer in api_transfers {
        let Some(id) = uuid(&transfer["id"]) else {
            continue;
        };
        match model.transfers.get(&id) {
            Some(modelled) => {
                for difference in transfer_differences(transfer, modelled, false) {
                    verdict
                        .model
                        .push(format!("transfer {id} as listed: {difference}"));
                }
            }
            None => verdict
                .phantom
                .push(format!("transfer {id} is listed but was never created")),
        }
    }
    verdict
}

/// The answer to a group's original, right after its events were applied.
fn check_application(
    group: &Group,
    requests: &[Request],
    events: &[Event],
    model: &Model,
    verdict: &mut Verdict,
    deferred: &mut Vec<(usize, Uuid)>,
) {
    let Some(index) = group.original else { return };
    let request = &requests[index];
    let group_events: Vec<&Event> = group.events.iter().map(|&e| &events[e]).collect();
    let mut problems: Vec<String> = Vec::new();
    let data_id = |event: &Event| uuid(&event.data["id"]);

    // The journal records what the client sent.
    match &request.kind {
        Kind::Transfer | Kind::Batch => {
            let items: Vec<Value> = if request.kind == Kind::Batch {
                request.body["transfers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            } else {
                vec![request.body.clone()]
            };
            for (item, event) in items.iter().zip(&group_events) {
                let (Some(sent), Some(id)) = (new_transfer(item), data_id(event)) else {
                    problems.push(format!("seq {}: unreadable", event.seq));
                    continue;
                };
                let Some(created) = model.transfers.get(&id) else {
                    problems.push(format!("seq {}: the model has no transfer {id}", event.seq));
                    continue;
                };
                let recorded = NewTransfer {
                    id: sent.id.map(|_| created.id),
                    debit: created.debit,
                    credit: created.credit,
                    amount: created.amount,
                    currency: created.currency.clone(),
                    pending: created.pending,
                    timeout_seconds: created.timeout_seconds,
                    code: created.code.clone(),
                    reference: created.reference.clone(),
                };
                if recorded != sent {
                    problems.push(format!(
                        "seq {} records {recorded:?}, the client sent {sent:?}",
                        event.seq
                    ));
                }
            }
        }
        Kind::Post { target } | Kind::Void { target } => {
            let event = group_events[0];
            if uuid(&event.data["transfer_id"]) != Some(*target) {
                problems.push(format!(
                    "seq {} resolves {} instead of {target}",
                    event.seq, event.data["transfer_id"]
                ));
            }
            if let (Kind::Post { .. }, Some(transfer)) =
                (&request.kind, model.transfers.get(target))
            {
                let wanted = optional_amount(&request.body).unwrap_or(transfer.amount);
                if transfer.posted_amount != wanted {
                    problems.push(format!(
                        "seq {} posted {} where the client asked for {}",
                        event.seq,
                        format_minor(transfer.posted_amount, 2),
                        format_minor(wanted, 2)
                    ));
                }
            }
        }
        Kind::Reverse { target } => {
            let event = group_events[0];
            if uuid(&event.data["reverses"]) != Some(*target) {
                problems.push(format!("seq {} reverses another transfer", event.seq));
            }
            if let (Some(original), Some(reversal)) = (
                model.transfers.get(target),
                data_id(event).and_then(|id| model.transfers.get(&id)),
            ) {
                let fits = match optional_amount(&request.body) {
                    Some(amount) => reversal.amount == amount,
                    None => original.reversed_amount == original.posted_amount,
                };
                if !fits || reversal.reference.as_deref() != request.body["reference"].as_str() {
                    problems.push(format!(
                        "seq {} reverses {} where the client asked for {}",
                        event.seq,
                        format_minor(reversal.amount, 2),
                        request.body
                    ));
                }
            }
        }
        Kind::OpenAccount => {
            let event = group_events[0];
            if event.data["id"] != request.body["id"] || event.data["code"] != request.body["code"]
            {
                problems.push(format!("seq {} opened another account", event.seq));
            }
        }
        Kind::CreateLedger => {
            if group_events[0].data["name"] != request.body["name"] {
                problems.push("another ledger was created".into());
            }
        }
        Kind::CreateKey => {}
    }

    // The answer is the model's state at this point.
    if let Some(fin) = request.fin.as_ref().filter(|fin| fin.is_success()) {
        verdict.answers_checked += 1;
        let committed_attempt = group
            .committed_by
            .filter(|(member, _)| *member == index)
            .map(|(_, attempt)| attempt);
        let expected_status = match &request.kind {
            Kind::Transfer if request.key.is_none() => {
                if committed_attempt == Some(request.attempts.len()) {
                    201
                } else {
                    200
                }
            }
            Kind::Post { .. } | Kind::Void { .. } => 200,
            _ => 201,
        };
        if fin.status != expected_status {
            problems.push(format!(
                "answered {} where {expected_status} was due",
                fin.status
            ));
        }
        match &request.kind {
            Kind::Transfer if fin.status == 200 => {
                if let Some(id) = data_id(group_events[0]) {
                    deferred.push((index, id));
                }
            }
            Kind::Transfer | Kind::Reverse { .. } => {
                if let Some(transfer) =
                    data_id(group_events[0]).and_then(|id| model.transfers.get(&id))
                {
                    problems.extend(transfer_differences(&fin.json, transfer, false));
                }
            }
            Kind::Post { target } | Kind::Void { target } => {
                if let Some(transfer) = model.transfers.get(target) {
                    problems.extend(transfer_differences(&fin.json, transfer, false));
                }
            }
            Kind::Batch => {
                let results = fin.json["results"].as_array().cloned().unwrap_or_default();
                if results.len() != group_events.len() {
                    problems.push(format!(
                        "{} results for {} events",
                        results.len(),
                        group_events.len()
                    ));
                }
                for (result, event) in results.iter().zip(&group_events) {
                    if result["status"] != 201 {
                        problems.push(format!("item status {}", result["status"]));
                    }
                    if let Some(transfer) = data_id(event).and_then(|id| model.transfers.get(&id)) {
                        problems.extend(transfer_differences(&result["transfer"], transfer, false));
                    }
                }
            }
            Kind::CreateLedger | Kind::OpenAccount | Kind::CreateKey => {}
        }
    }
    for problem in problems {
        verdict.model.push(format!("{}: {problem}", request.name));
    }
}

/// Replays and reuses of keys and ids (§6), judged against the originals' answers.
fn check_probes(
    requests: &[Request],
    by_name: &HashMap<&str, usize>,
    model: &Model,
    verdict: &mut Verdict,
) {
    for probe_request in requests {
        let Some((probe, original_name)) = &probe_request.probe else {
            continue;
        };
        let Some(fin) = &probe_request.fin else {
            continue;
        };
        let Some(original) = by_name
            .get(original_name.as_str())
            .and_then(|&index| requests[index].fin.as_ref())
        else {
            continue;
        };
        verdict.probes_checked += 1;
        let name = &probe_request.name;
        let problem = match probe {
            Probe::SameKeySameBody => {
                if fin.status != original.status || fin.body != original.body {
                    Some(format!(
                        "replay answered {} {} where the original was {} {}",
                        fin.status, fin.body, original.status, original.body
                    ))
                } else if !fin.replayed {
                    Some("replay without Idempotent-Replayed: true".into())
                } else {
                    None
                }
            }
            Probe::ConcurrentDuplicate => {
                if fin.status != original.status || fin.body != original.body {
                    Some(format!(
                        "answered {} {} where its twin got {} {}",
                        fin.status, fin.body, original.status, original.body
                    ))
                } else if !fin.replayed && !original.replayed && fin.is_success() {
                    Some("neither twin was marked Idempotent-Replayed".into())
                } else {
                    None
                }
            }
            Probe::SameKeyOtherBody => {
                (fin.status != 422 || fin.code() != "idempotency_key_reused").then(|| {
                    format!(
                        "another body under a used key answered {} {}",
                        fin.status, fin.body
                    )
                })
            }
            Probe::SameIdOtherFields => (fin.status != 409
                || fin.code() != "transfer_exists_with_different_fields")
                .then(|| {
                    format!(
                        "a used id with other fields answered {} {}",
                        fin.status, fin.body
                    )
                }),
            Probe::SameIdSameFields => {
                let id = uuid(&probe_request.body["id"]);
                match id.and_then(|id| model.transfers.get(&id)) {
                    Some(transfer) if fin.status == 200 => {
                        let differences = transfer_differences(&fin.json, transfer, true);
                        (!differences.is_empty()).then(|| differences.join("; "))
                    }
                    _ => Some(format!(
                        "the same id and fields answered {} {}",
                        fin.status, fin.body
                    )),
                }
            }
        };
        if let Some(problem) = problem {
            verdict.idempotence.push(format!("{name}: {problem}"));
        }
    }
}

/// How often each final answer was given, by request kind: `kind status code → count`.
pub fn answer_counts(requests: &[Request]) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for request in requests {
        let label = match &request.fin {
            Some(fin) => format!(
                "{}{} {} {}",
                request.kind.label(),
                match &request.probe {
                    Some((probe, _)) => format!(" probe:{probe:?}"),
                    None => String::new(),
                },
                fin.status,
                fin.code()
            ),
            None => format!("{} unresolved", request.kind.label()),
        };
        *counts.entry(label.trim_end().to_owned()).or_default() += 1;
    }
    let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
    counts.sort();
    counts
}

/// The checker's own test, on every run: each mutation of the real history (an event dropped,
/// repeated or invented, an answer or a refusal altered, an event out of real-time order) must
/// be caught, by the check named. Returns `(mutations tried, those not caught)`.
pub fn self_test(
    requests: &[Request],
    journal: &[Value],
    api_accounts: &[Value],
    api_transfers: &[Value],
) -> (usize, Vec<String>) {
    type Caught = fn(&Verdict) -> bool;
    let mut missed = Vec::new();
    let mut tried = 0;
    let mut run = |name: &str,
                   requests: Vec<Request>,
                   journal: Vec<Value>,
                   accounts: Vec<Value>,
                   caught: Caught| {
        tried += 1;
        let verdict = check(&requests, &journal, &accounts, api_transfers);
        if !caught(&verdict) {
            missed.push(name.to_owned());
        }
    };
    // An acknowledged single transfer, by Idempotency-Key, and its event.
    let target = requests.iter().position(|request| {
        request.kind == Kind::Transfer
            && request.key.is_some()
            && request.probe.is_none()
            && request.fin.as_ref().is_some_and(|fin| fin.status == 201)
    });
    let Some(target) = target else {
        return (1, vec!["no acknowledged transfer to mutate".into()]);
    };
    let key = requests[target].key.clone();
    let Some(position) = journal.iter().position(|event| {
        event["idempotency_key"].as_str() == key.as_deref() && event["type"] == "transfer_created"
    }) else {
        return (
            1,
            vec!["the acknowledged transfer is not in the journal".into()],
        );
    };
    let last_seq = journal
        .last()
        .and_then(|event| event["seq"].as_u64())
        .unwrap_or(0);

    let mut dropped = journal.to_vec();
    dropped.remove(position);
    run(
        "an acknowledged event dropped",
        requests.to_vec(),
        dropped,
        api_accounts.to_vec(),
        |v| !v.lost.is_empty(),
    );

    let mut repeated = journal.to_vec();
    let mut again = journal[position].clone();
    again["seq"] = Value::from(last_seq + 1);
    repeated.push(again.clone());
    run(
        "an event applied twice",
        requests.to_vec(),
        repeated,
        api_accounts.to_vec(),
        |v| !v.applied_twice.is_empty(),
    );

    let mut invented = journal.to_vec();
    again["request_id"] = Value::from("nobody-sent-this.1");
    again["data"]["id"] = Value::from(Uuid::from_u128(0xdead_beef).to_string());
    invented.push(again);
    run(
        "an event nobody sent",
        requests.to_vec(),
        invented,
        api_accounts.to_vec(),
        |v| !v.phantom.is_empty(),
    );

    let mut refused = requests.to_vec();
    if let Some(fin) = refused[target].fin.as_mut() {
        fin.status = 422;
        fin.json = serde_json::json!({"code": "insufficient_funds"});
    }
    run(
        "an applied request answered as refused",
        refused,
        journal.to_vec(),
        api_accounts.to_vec(),
        |v| !v.refused_but_applied.is_empty(),
    );

    let mut wrong = requests.to_vec();
    if let Some(fin) = wrong[target].fin.as_mut() {
        let cents = fin.json["amount"]
            .as_str()
            .and_then(|amount| parse_minor(amount, 2).ok())
            .unwrap_or(0);
        fin.json["amount"] = Value::from(format_minor(cents + 1, 2));
    }
    run(
        "an answer unlike the model",
        wrong,
        journal.to_vec(),
        api_accounts.to_vec(),
        |v| !v.model.is_empty(),
    );

    let mut late = requests.to_vec();
    let end = requests
        .iter()
        .filter_map(|request| request.fin.as_ref().map(|fin| fin.at_us))
        .max()
        .unwrap_or(0);
    // Every request of the key, not only the target: the attempt that committed may be a probe
    // that reused the key (the group's committing member), and moving only the target would
    // leave the event rightly after that one's send (a seed once missed it so).
    for request in late.iter_mut().filter(|request| request.key == key) {
        request.invoked_us = end + 1;
    }
    run(
        "an event before its request was sent",
        late,
        journal.to_vec(),
        api_accounts.to_vec(),
        |v| !v.order.is_empty(),
    );

    let refusal = requests.iter().position(|request| {
        request.probe.is_none()
            && request
                .fin
                .as_ref()
                .is_some_and(|fin| fin.code() == "invalid_state_transition")
    });
    if let Some(refusal) = refusal {
        let mut altered = requests.to_vec();
        if let Some(fin) = altered[refusal].fin.as_mut() {
            let other = if fin.json["from"] == "posted" {
                "voided"
            } else {
                "posted"
            };
            fin.json["from"] = Value::from(other);
        }
        run(
            "a refusal the model never gives",
            altered,
            journal.to_vec(),
            api_accounts.to_vec(),
            |v| !v.unjustified_refusals.is_empty(),
        );
    }

    let replay = requests.iter().position(|request| {
        matches!(request.probe, Some((Probe::SameKeySameBody, _))) && request.fin.is_some()
    });
    if let Some(replay) = replay {
        let mut altered = requests.to_vec();
        if let Some(fin) = altered[replay].fin.as_mut() {
            fin.body.push(' ');
        }
        run(
            "a replay that is not byte-identical",
            altered,
            journal.to_vec(),
            api_accounts.to_vec(),
            |v| !v.idempotence.is_empty(),
        );
    }

    let mut accounts = api_accounts.to_vec();
    if let Some(account) = accounts.last_mut() {
        let cents = account["posted_credits"]
            .as_str()
            .and_then(|amount| parse_minor(amount, 2).ok())
            .unwrap_or(0);
        account["posted_credits"] = Value::from(format_minor(cents + 1, 2));
    }
    run(
        "a final balance unlike the model",
        requests.to_vec(),
        journal.to_vec(),
        accounts,
        |v| !v.model.is_empty(),
    );
    (tried, missed)
}
