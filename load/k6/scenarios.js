// k6 load scenarios for the ledger service, one script, selected with SCENARIO.
//
//   export K6_NO_USAGE_REPORT=true      # k6 reads it from the environment only (not a script option)
//   SCENARIO=uniform  k6 run load/k6/scenarios.js   # single transfers between random accounts
//   SCENARIO=hot      k6 run load/k6/scenarios.js   # every transfer credits one account
//   SCENARIO=batch    k6 run load/k6/scenarios.js   # atomic batches of BATCH_SIZE (1,000) transfers
//   SCENARIO=twophase k6 run load/k6/scenarios.js   # pending transfer, then post or void it
//   SCENARIO=retry    k6 run load/k6/scenarios.js   # idempotent retry storm, checked from balances
//   SCENARIO=mixed    k6 run load/k6/scenarios.js   # reads (accounts, balances, transfers, entries,
//                                                   # journal) alongside writes
//   SCENARIO=all      k6 run load/k6/scenarios.js   # all six, one after the other
//   SCENARIO=hot,retry …                            # a list: one after the other
//
// Environment (load/README.md has the full table): BASE_URL, LEDGER_ADMIN_KEY (required),
// LEDGER_WRITER_KEY, LEDGER_AUDITOR_KEY, LEDGER_NAME, ACCOUNTS, CURRENCY, VUS, DURATION, P99_MS,
// BATCH_SIZE, BATCH_P99_MS, VOID_PERCENT, PARTIAL_PERCENT, ITERATIONS, RETRY_ACCOUNTS,
// RETRY_INJECT_DOUBLE, WRITE_PERCENT, SUMMARY_DIR, SUMMARY_NAME.
//
// The end-of-test summary is printed on stdout and written as SUMMARY_DIR/SUMMARY_NAME.html and
// .json (default ./summary-<SCENARIO>.html/.json) by report.js, which needs no network.
// Every state-changing POST carries an Idempotency-Key (a fresh UUID v4, except in the retry storm).

import http from 'k6/http';
import exec from 'k6/execution';
import { check, fail, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import {
  BASE_URL,
  CURRENCY,
  LEDGER,
  checkReady,
  createKey,
  createLedger,
  describe,
  durationSeconds,
  formatCents,
  headers,
  ledgerPath,
  openAccounts,
  parseCents,
  percent,
  positiveInt,
  randomAmount,
  randomInt,
  randomPair,
  warnAboutUsageReport,
} from './lib.js';
import { summaryOutputs } from './report.js';

const ALL = ['uniform', 'hot', 'batch', 'twophase', 'retry', 'mixed'];
const DEFAULT_VUS = { uniform: 32, hot: 32, batch: 4, twophase: 16, retry: 16, mixed: 32 };
// The operations (the `op` tag of their requests) each scenario sends, for per-op thresholds.
const OPS = {
  uniform: ['transfer'],
  hot: ['hot_transfer'],
  batch: ['batch'],
  twophase: ['pending', 'post', 'void'],
  retry: ['retry'],
  mixed: ['transfer', 'get_account', 'get_balance', 'list_transfers', 'list_entries', 'journal'],
};

const SCENARIO = (__ENV.SCENARIO || 'uniform').toLowerCase();
const SELECTED = SCENARIO === 'all' ? ALL : SCENARIO.split(',').map((s) => s.trim()).filter((s) => s);
for (const name of SELECTED) {
  if (!ALL.includes(name)) throw new Error(`unknown SCENARIO ${JSON.stringify(name)}: one of ${ALL.join(', ')}, or all`);
}
if (SELECTED.length === 0) throw new Error(`SCENARIO is empty: one of ${ALL.join(', ')}, or all`);
const selected = (name) => SELECTED.includes(name);

const ACCOUNTS = positiveInt('ACCOUNTS', 1000);
const DURATION = __ENV.DURATION || '30s';
const P99_MS = positiveInt('P99_MS', 500);
const BATCH_SIZE = positiveInt('BATCH_SIZE', 1000);
const BATCH_P99_MS = positiveInt('BATCH_P99_MS', 5000);
const VOID_PERCENT = percent('VOID_PERCENT', 50);
const PARTIAL_PERCENT = percent('PARTIAL_PERCENT', 50);
const ITERATIONS = positiveInt('ITERATIONS', 1000);
// Self-test of the retry storm's assertion: also apply request 0 under another key, as a service
// that ignored Idempotency-Key would; teardown must then fail the run.
const RETRY_INJECT_DOUBLE = ['1', 'true', 'yes'].includes((__ENV.RETRY_INJECT_DOUBLE || '0').toLowerCase());
const RETRY_ACCOUNTS = positiveInt('RETRY_ACCOUNTS', 10);
const WRITE_PERCENT = percent('WRITE_PERCENT', 20);
const GRACEFUL_STOP_S = 5;

if (ACCOUNTS < 2) throw new Error('ACCOUNTS must be at least 2');
if (BATCH_SIZE > 1000) throw new Error('BATCH_SIZE is at most 1000 (LEDGER_MAX_BATCH_TRANSFERS)');

const transfersOk = new Counter('transfers_ok');
const transfersFailed = new Counter('transfers_failed');
const pendingPosted = new Counter('twophase_posted');
const pendingVoided = new Counter('twophase_voided');
const retryUniqueOk = new Counter('retry_unique_ok');
// Cents of every unique retry-storm request a client saw succeed, minus the balances teardown
// reads back: 0 when nothing was applied twice and nothing acknowledged was lost.
const retryUnaccounted = new Counter('retry_unaccounted_cents');

function vusOf(name) {
  return positiveInt('VUS', DEFAULT_VUS[name]);
}

function buildOptions() {
  const scenarios = {};
  let offset = 0;
  const seconds = durationSeconds(DURATION);
  for (const name of SELECTED) {
    const common = { exec: name, startTime: `${offset}s`, gracefulStop: `${GRACEFUL_STOP_S}s` };
    if (name === 'retry') {
      // A fixed set of unique requests, so that teardown knows every key and amount.
      scenarios[name] = {
        ...common,
        executor: 'shared-iterations',
        vus: Math.min(vusOf(name), ITERATIONS),
        iterations: ITERATIONS,
        maxDuration: DURATION,
      };
    } else {
      scenarios[name] = { ...common, executor: 'constant-vus', vus: vusOf(name), duration: DURATION };
    }
    offset += seconds + GRACEFUL_STOP_S;
  }
  const thresholds = {
    // Setup's tolerated 409s are marked as expected (lib.js setupParams), so they do not count.
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  };
  for (const name of SELECTED) {
    for (const op of OPS[name]) {
      thresholds[`http_req_duration{op:${op}}`] = [`p(99)<${op === 'batch' ? BATCH_P99_MS : P99_MS}`];
    }
  }
  if (selected('retry')) thresholds.retry_unaccounted_cents = ['count==0'];
  return {
    setupTimeout: '10m',
    teardownTimeout: '10m',
    scenarios,
    thresholds,
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  };
}

export const options = buildOptions();

// ---------------------------------------------------------------- setup

export function setup() {
  warnAboutUsageReport();
  const started = Date.now();
  checkReady();
  createLedger();
  const data = { maxSeq: 0 };
  const notes = [];
  if (SELECTED.some((name) => name !== 'retry')) {
    const codes = [];
    for (let i = 1; i <= ACCOUNTS; i++) codes.push(`acct-${i}`);
    const opened = openAccounts(codes, 'credit');
    data.accounts = opened.ids;
    data.maxSeq = opened.maxSeq;
    notes.push(`${ACCOUNTS} accounts (${opened.opened} opened, ${opened.reused} reused)`);
  }
  if (selected('retry')) {
    // Fresh accounts each run, so their balances hold this run's storm only.
    const runId = `${Date.now().toString(36)}${randomInt(1 << 30).toString(36)}`;
    const source = openAccounts([`retry:${runId}:source`], 'debit');
    const sinkCodes = [];
    for (let k = 1; k <= RETRY_ACCOUNTS; k++) sinkCodes.push(`retry:${runId}:sink-${k}`);
    const sinks = openAccounts(sinkCodes, 'credit');
    data.retry = { runId, source: source.ids[0], sinks: sinks.ids };
    notes.push(`retry storm ${runId}: ${ITERATIONS} unique requests into ${RETRY_ACCOUNTS} fresh accounts`);
  }
  // Admins manage ledgers and accounts; writers move money; auditors read the journal.
  data.writerKey = __ENV.LEDGER_WRITER_KEY || createKey('writer');
  if (selected('mixed')) data.auditorKey = __ENV.LEDGER_AUDITOR_KEY || createKey('auditor');
  console.log(
    `ledger ${LEDGER}: ${notes.join('; ')}; set up in ${((Date.now() - started) / 1000).toFixed(1)}s; ` +
      `scenarios ${SELECTED.join(', ')} for ${DURATION} each`,
  );
  return data;
}

// ---------------------------------------------------------------- helpers

let failuresLogged = 0;
function logFailure(what, res) {
  if (failuresLogged < 3) {
    failuresLogged++;
    console.warn(`${what} failed: ${describe(res)}`);
  }
  // No answer at all (service down, connection refused): back off instead of spinning.
  if (res && res.status === 0) sleep(1);
}

function jsonField(res, field) {
  try {
    return res.json(field);
  } catch (_) {
    return undefined;
  }
}

function writeParams(data, op, key) {
  return { headers: headers(data.writerKey, key || true), tags: { op } };
}

function postTransfer(data, debit, credit, op, extra) {
  const body = { debit_account_id: debit, credit_account_id: credit, amount: randomAmount(), currency: CURRENCY, ...extra };
  const res = http.post(`${ledgerPath}/transfers`, JSON.stringify(body), writeParams(data, op));
  const ok = check(res, { [`${op} 201`]: (r) => r.status === 201 });
  if (ok) transfersOk.add(1);
  else {
    transfersFailed.add(1);
    logFailure(op, res);
  }
  return ok ? res : null;
}

// ---------------------------------------------------------------- uniform, hot

export function uniform(data) {
  const [i, j] = randomPair(data.accounts.length);
  postTransfer(data, data.accounts[i], data.accounts[j], 'transfer');
}

// Every transfer credits acct-1, debited from a random other account.
export function hot(data) {
  const ids = data.accounts;
  postTransfer(data, ids[1 + randomInt(ids.length - 1)], ids[0], 'hot_transfer');
}

// ---------------------------------------------------------------- batch

// A few bodies per VU, built once and reused (each request with its own Idempotency-Key, so each
// is applied anew), so that k6 measures the service rather than building 150 KB of JSON each time.
const BODIES_PER_VU = 4;
let batchBodies = null;

function batchBody(ids) {
  const transfers = [];
  for (let k = 0; k < BATCH_SIZE; k++) {
    const [i, j] = randomPair(ids.length);
    transfers.push({ debit_account_id: ids[i], credit_account_id: ids[j], amount: randomAmount(), currency: CURRENCY });
  }
  return JSON.stringify({ atomic: true, transfers });
}

export function batch(data) {
  if (!batchBodies) {
    batchBodies = [];
    for (let b = 0; b < BODIES_PER_VU; b++) batchBodies.push(batchBody(data.accounts));
  }
  const body = batchBodies[exec.vu.iterationInScenario % BODIES_PER_VU];
  const res = http.post(`${ledgerPath}/transfers/batch`, body, writeParams(data, 'batch'));
  const ok = check(res, {
    'batch 201': (r) => r.status === 201,
    'batch: every item applied': (r) => {
      const results = jsonField(r, 'results');
      return Array.isArray(results) && results.length === BATCH_SIZE && results.every((x) => x.status === 201);
    },
  });
  if (ok) transfersOk.add(BATCH_SIZE);
  else {
    transfersFailed.add(BATCH_SIZE);
    logFailure('batch', res);
  }
}

// ---------------------------------------------------------------- two-phase

// A pending transfer (reserving its amount), then: void it (VOID_PERCENT), or post it, in full
// or in part (PARTIAL_PERCENT of the posts: half the amount, the rest released).
export function twophase(data) {
  const [i, j] = randomPair(data.accounts.length);
  const amountCents = 2 + randomInt(9999);
  const body = {
    debit_account_id: data.accounts[i],
    credit_account_id: data.accounts[j],
    amount: formatCents(amountCents),
    currency: CURRENCY,
    pending: true,
    timeout_seconds: 3600,
  };
  const created = http.post(`${ledgerPath}/transfers`, JSON.stringify(body), writeParams(data, 'pending'));
  const createdOk = check(created, {
    'pending 201': (r) => r.status === 201,
    'pending: state pending': (r) => jsonField(r, 'state') === 'pending',
  });
  if (!createdOk) {
    transfersFailed.add(1);
    logFailure('pending', created);
    return;
  }
  transfersOk.add(1);
  const id = created.json('id');
  if (Math.random() < VOID_PERCENT) {
    const res = http.post(`${ledgerPath}/transfers/${id}/void`, '{}', writeParams(data, 'void'));
    const ok = check(res, {
      'void 200': (r) => r.status === 200,
      'void: state voided': (r) => jsonField(r, 'state') === 'voided',
    });
    if (ok) pendingVoided.add(1);
    else logFailure('void', res);
  } else {
    const partial = Math.random() < PARTIAL_PERCENT;
    const postCents = partial ? Math.floor(amountCents / 2) : amountCents;
    const postBody = partial ? { amount: formatCents(postCents) } : {};
    const res = http.post(`${ledgerPath}/transfers/${id}/post`, JSON.stringify(postBody), writeParams(data, 'post'));
    const ok = check(res, {
      'post 200': (r) => r.status === 200,
      'post: state posted': (r) => jsonField(r, 'state') === 'posted',
      'post: posted_amount as asked': (r) => {
        const posted = jsonField(r, 'posted_amount');
        return posted !== undefined && parseCents(posted) === postCents;
      },
    });
    if (ok) pendingPosted.add(1);
    else logFailure('post', res);
  }
}

// ---------------------------------------------------------------- retry storm

// Unique request i of the storm: always the same key and body, so a resend is a replay.
function retryRequest(data, i) {
  const r = data.retry;
  const key = `k6-retry-${r.runId}-${i}`;
  const cents = 1 + ((i * 7919) % 10000);
  const body = JSON.stringify({
    debit_account_id: r.source,
    credit_account_id: r.sinks[i % r.sinks.length],
    amount: formatCents(cents),
    currency: CURRENCY,
    reference: key,
  });
  return { key, cents, body };
}

function replayed(res) {
  return String(res.headers['Idempotent-Replayed'] || '').toLowerCase() === 'true';
}

// Each unique request is sent 2 or 3 times with one Idempotency-Key: at once (concurrent
// duplicates) or one after the other (a client retrying).
export function retry(data) {
  const i = exec.scenario.iterationInTest;
  const req = retryRequest(data, i);
  const copies = 2 + randomInt(2);
  const url = `${ledgerPath}/transfers`;
  let responses;
  if (Math.random() < 0.5) {
    const batchReqs = [];
    for (let c = 0; c < copies; c++) batchReqs.push(['POST', url, req.body, writeParams(data, 'retry', req.key)]);
    responses = http.batch(batchReqs);
  } else {
    responses = [];
    for (let c = 0; c < copies; c++) responses.push(http.post(url, req.body, writeParams(data, 'retry', req.key)));
  }
  const ids = responses.map((r) => jsonField(r, 'id'));
  check(responses, {
    'retry: every copy 201': (rs) => rs.every((r) => r.status === 201),
    'retry: every copy names one transfer': () => ids[0] !== undefined && ids.every((id) => id === ids[0]),
    'retry: one copy applied, the others Idempotent-Replayed': (rs) => rs.filter((r) => !replayed(r)).length === 1,
  });
  if (RETRY_INJECT_DOUBLE && i === 0) {
    http.post(url, req.body, writeParams(data, 'retry_injected', `${req.key}-injected`));
  }
  if (responses.some((r) => r.status === 201)) {
    retryUniqueOk.add(1);
    retryUnaccounted.add(req.cents);
  } else {
    logFailure('retry', responses[0]);
  }
}

function readAccount(data, id) {
  const res = http.get(`${ledgerPath}/accounts/${id}`, { headers: headers(data.writerKey), tags: { op: 'retry_verify' } });
  if (res.status !== 200) fail(`retry storm: reading account ${id} failed: ${describe(res)}`);
  return res.json();
}

// After the storm: every key is sent once more (a replay returns the first outcome; a key the
// storm never reached, if DURATION cut it short, is applied now). Then the balances of the run's
// accounts must equal what the successful unique requests moved, and the source's transfers must
// be exactly one per successful key. Otherwise the run fails.
function verifyRetryStorm(data) {
  const r = data.retry;
  let expected = 0;
  let okKeys = 0;
  let freshNow = 0;
  let refused = 0;
  const CHUNK = 100;
  for (let start = 0; start < ITERATIONS; start += CHUNK) {
    const reqs = [];
    const items = [];
    for (let i = start; i < Math.min(ITERATIONS, start + CHUNK); i++) {
      const req = retryRequest(data, i);
      items.push(req);
      reqs.push(['POST', `${ledgerPath}/transfers`, req.body, writeParams(data, 'retry_settle', req.key)]);
    }
    http.batch(reqs).forEach((res, k) => {
      if (res.status === 201) {
        okKeys++;
        expected += items[k].cents;
        if (!replayed(res)) {
          // Not sent during the storm (cut short): teardown is the client that saw it succeed.
          freshNow++;
          retryUnaccounted.add(items[k].cents);
        }
      } else {
        refused++;
        logFailure('retry settle', res);
      }
    });
  }

  let sinkCents = 0;
  let sinkPending = 0;
  for (const id of r.sinks) {
    const account = readAccount(data, id);
    sinkCents += parseCents(account.posted_balance);
    sinkPending += parseCents(account.pending_credits) + parseCents(account.pending_debits);
  }
  const sourceCents = parseCents(readAccount(data, r.source).posted_balance);

  // The source's transfers: one per successful key, none twice (the key is the reference).
  const references = {};
  let listed = 0;
  let listedCents = 0;
  let duplicates = 0;
  let cursor = null;
  for (;;) {
    let url = `${ledgerPath}/transfers?account_id=${r.source}&limit=1000`;
    if (cursor) url += `&cursor=${encodeURIComponent(cursor)}`;
    const res = http.get(url, { headers: headers(data.writerKey), tags: { op: 'retry_verify' } });
    if (res.status !== 200) fail(`retry storm: listing transfers failed: ${describe(res)}`);
    const page = res.json();
    for (const t of page.data) {
      listed++;
      listedCents += parseCents(t.amount);
      if (references[t.reference]) duplicates++;
      references[t.reference] = true;
    }
    if (!page.next_cursor || page.data.length === 0) break;
    cursor = page.next_cursor;
  }
  retryUnaccounted.add(-sinkCents);

  const ok =
    sinkCents === expected && sourceCents === expected && listedCents === expected &&
    listed === okKeys && duplicates === 0 && sinkPending === 0;
  const report =
    `retry storm ${r.runId}: ${okKeys} of ${ITERATIONS} unique requests succeeded (${refused} refused, ` +
    `${freshNow} first applied by teardown) moving ${formatCents(expected)} ${CURRENCY}; ` +
    `balances: sinks ${formatCents(sinkCents)}, source ${formatCents(sourceCents)}; ` +
    `transfers: ${listed} (${formatCents(listedCents)}), ${duplicates} duplicated references`;
  check(null, { 'retry: balances equal what the successful unique requests moved': () => ok });
  if (!ok) fail(`${report}: MISMATCH (a request applied twice or an acknowledged one lost)`);
  console.log(`${report}: OK`);
}

export function teardown(data) {
  if (data && data.retry) verifyRetryStorm(data);
}

// ---------------------------------------------------------------- mixed

let journalHead = 0; // highest journal seq this VU has seen (setup's, then its own writes')

// WRITE_PERCENT writes (single transfers); the rest reads, spread evenly over an account, its
// balance, its transfers, its entries and a journal page (auditor key).
export function mixed(data) {
  const ids = data.accounts;
  journalHead = Math.max(journalHead, data.maxSeq);
  if (Math.random() < WRITE_PERCENT) {
    const [i, j] = randomPair(ids.length);
    const res = postTransfer(data, ids[i], ids[j], 'transfer');
    if (res) journalHead = Math.max(journalHead, jsonField(res, 'journal_seq') || 0);
    return;
  }
  const id = ids[randomInt(ids.length)];
  const reads = [
    ['get_account', `${ledgerPath}/accounts/${id}`, data.writerKey],
    ['get_balance', `${ledgerPath}/accounts/${id}/balance`, data.writerKey],
    ['list_transfers', `${ledgerPath}/transfers?account_id=${id}&limit=20`, data.writerKey],
    ['list_entries', `${ledgerPath}/accounts/${id}/entries?limit=20`, data.writerKey],
    ['journal', `${ledgerPath}/journal?after_seq=${randomInt(journalHead + 1)}&limit=50`, data.auditorKey],
  ];
  const [op, url, key] = reads[randomInt(reads.length)];
  const res = http.get(url, { headers: headers(key), tags: { op } });
  const ok = check(res, { [`${op} 200`]: (r) => r.status === 200 });
  if (!ok) logFailure(op, res);
}

// ---------------------------------------------------------------- report

export function handleSummary(data) {
  const name = __ENV.SUMMARY_NAME || `summary-${SCENARIO === 'all' ? 'all' : SELECTED.join('-')}`;
  const vus = SELECTED.map((s) => `${s} ${s === 'retry' ? Math.min(vusOf(s), ITERATIONS) : vusOf(s)}`).join(', ');
  return summaryOutputs(data, name, `ledger k6: ${SELECTED.join(', ')}`, [
    ['service', BASE_URL],
    ['ledger', LEDGER],
    ['scenarios (VUs)', vus],
    ['duration per scenario', DURATION],
    ...(selected('batch') ? [['batch size', BATCH_SIZE]] : []),
    ...(selected('retry') ? [['retry storm unique requests', ITERATIONS]] : []),
    ...(selected('mixed') ? [['mixed: writes', `${Math.round(WRITE_PERCENT * 100)}%`]] : []),
  ]);
}

export default function (data) {
  // Used only when the command line replaces the scenarios (`k6 run --vus 4 --duration 5s`).
  uniform(data);
}
