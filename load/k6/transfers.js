// k6 load profile: transfers between random accounts of one ledger.
//
//   k6 run load/k6/transfers.js                                   # against http://127.0.0.1:8080
//   BASE_URL=http://127.0.0.1:18181 VUS=8 DURATION=10s ACCOUNTS=50 k6 run load/k6/transfers.js
//   HOT_ACCOUNT=1 k6 run load/k6/transfers.js                     # every transfer credits one account
//
// Environment (see README.md beside this file):
//   BASE_URL        service URL                                   default http://127.0.0.1:8080
//   LEDGER_ADMIN_KEY   admin key: creates the ledger, the accounts and a writer key
//                      (LEDGER_API_KEY is accepted as its older name)            required
//   LEDGER_WRITER_KEY  writer key for the transfers; default: one setup creates
//   LEDGER_NAME     ledger to create or reuse                     default load
//   ACCOUNTS        accounts to open or reuse (codes acct-1..N)   default 1000
//   CURRENCY        currency of the accounts and transfers        default EUR (2 decimals)
//   VUS             concurrent virtual users                      default 32
//   DURATION        how long the transfer scenario runs           default 30s
//   HOT_ACCOUNT     1: every transfer credits the same account    default 0
//   P99_MS          p(99) threshold for transfer requests, in ms  default 500
//
// Every state-changing POST carries a fresh `Idempotency-Key` (a UUID v4).
//
// Set K6_NO_USAGE_REPORT=true in the environment (k6 reads it only from there or from
// --no-usage-report): otherwise k6 sends an anonymous usage report to Grafana at the end of the run.
// The end-of-test summary goes to stdout and to SUMMARY_DIR/summary-transfers.html and .json
// (report.js, no network; SUMMARY_DIR defaults to the current directory, `none` writes no files).
// More scenarios (batches, two-phase, retry storm, mixed reads): scenarios.js, see load/README.md.

import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';
import { warnAboutUsageReport } from './lib.js';
import { summaryOutputs } from './report.js';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const ADMIN_KEY = __ENV.LEDGER_ADMIN_KEY || __ENV.LEDGER_API_KEY || '';
const WRITER_KEY = __ENV.LEDGER_WRITER_KEY || '';
const LEDGER = __ENV.LEDGER_NAME || 'load';
const ACCOUNTS = positiveInt('ACCOUNTS', 1000);
const CURRENCY = __ENV.CURRENCY || 'EUR';
const VUS = positiveInt('VUS', 32);
const DURATION = __ENV.DURATION || '30s';
const HOT_ACCOUNT = ['1', 'true', 'yes'].includes((__ENV.HOT_ACCOUNT || '0').toLowerCase());
const P99_MS = positiveInt('P99_MS', 500);

const PAGE_SIZE = 1000; // the service's largest page
const SETUP_BATCH = 50; // account creations sent in parallel during setup

if (ACCOUNTS < 2) {
  throw new Error('ACCOUNTS must be at least 2');
}

const ledgerPath = `${BASE_URL}/v1/ledgers/${encodeURIComponent(LEDGER)}`;

// Counted only for 201 answers: its rate in the end-of-test summary is transfers/s.
const transfersOk = new Counter('transfers_ok');
const transfersFailed = new Counter('transfers_failed');

export const options = {
  setupTimeout: '10m',
  scenarios: {
    transfers: {
      executor: 'constant-vus',
      exec: 'transfer',
      vus: VUS,
      duration: DURATION,
    },
  },
  thresholds: {
    // Setup's tolerated 409s are marked as expected (see `setupParams`), so they do not count here.
    http_req_failed: ['rate<0.01'],
    'http_req_duration{op:transfer}': [`p(99)<${P99_MS}`],
    checks: ['rate>0.99'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

function positiveInt(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

function uuidv4() {
  if (typeof crypto !== 'undefined' && typeof crypto.randomUUID === 'function') {
    return crypto.randomUUID();
  }
  // Fallback (Math.random is enough for idempotency keys of a load test).
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = Math.floor(Math.random() * 16);
    return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16);
  });
}

function headers(post, key) {
  const h = { Accept: 'application/json' };
  if (post) {
    h['Content-Type'] = 'application/json';
    h['Idempotency-Key'] = uuidv4();
  }
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

// Setup requests: 201 and 409 (already there) are both expected answers.
function setupParams(post, op) {
  return {
    headers: headers(post, ADMIN_KEY),
    tags: { op },
    responseCallback: http.expectedStatuses(200, 201, 409),
  };
}

function problemCode(res) {
  try {
    return res.json('code');
  } catch (_) {
    return undefined;
  }
}

function describe(res) {
  return `${res.request.method} ${res.url} -> ${res.status} ${res.error || ''} ${String(res.body).slice(0, 300)}`;
}

function accountCode(i) {
  return `acct-${i}`;
}

// All accounts of the ledger, by code (follows `next_cursor`).
function listAccounts() {
  const byCode = {};
  let cursor = null;
  for (;;) {
    let url = `${ledgerPath}/accounts?limit=${PAGE_SIZE}`;
    if (cursor) url += `&cursor=${encodeURIComponent(cursor)}`;
    const res = http.get(url, setupParams(false, 'list_accounts'));
    if (res.status !== 200) fail(`listing accounts failed: ${describe(res)}`);
    const page = res.json();
    for (const account of page.data) byCode[account.code] = account;
    if (!page.next_cursor || page.data.length === 0) return byCode;
    cursor = page.next_cursor;
  }
}

export function setup() {
  warnAboutUsageReport();
  const setupStarted = Date.now();
  const ready = http.get(`${BASE_URL}/health/ready`, { tags: { op: 'ready' } });
  if (ready.status !== 200) fail(`service not ready: ${describe(ready)}`);

  const created = http.post(
    `${BASE_URL}/v1/ledgers`,
    JSON.stringify({ name: LEDGER }),
    setupParams(true, 'create_ledger'),
  );
  if (!(created.status === 201 || (created.status === 409 && problemCode(created) === 'ledger_exists'))) {
    fail(`creating ledger ${LEDGER} failed: ${describe(created)}`);
  }

  const ids = new Array(ACCOUNTS);
  let taken = 0;
  for (let start = 1; start <= ACCOUNTS; start += SETUP_BATCH) {
    const batch = [];
    for (let i = start; i < start + SETUP_BATCH && i <= ACCOUNTS; i++) {
      batch.push([
        'POST',
        `${ledgerPath}/accounts`,
        JSON.stringify({
          code: accountCode(i),
          currency: CURRENCY,
          normal_side: 'credit',
          debits_must_not_exceed_credits: false,
        }),
        setupParams(true, 'create_account'),
      ]);
    }
    const responses = http.batch(batch);
    responses.forEach((res, k) => {
      const i = start + k;
      if (res.status === 201) {
        ids[i - 1] = res.json('id');
      } else if (res.status === 409 && problemCode(res) === 'account_code_taken') {
        taken++;
      } else {
        fail(`opening account ${accountCode(i)} failed: ${describe(res)}`);
      }
    });
  }

  if (taken > 0) {
    const byCode = listAccounts();
    for (let i = 1; i <= ACCOUNTS; i++) {
      if (ids[i - 1]) continue;
      const account = byCode[accountCode(i)];
      if (!account) fail(`account ${accountCode(i)} exists but is not listed`);
      if (account.currency !== CURRENCY) {
        fail(`account ${accountCode(i)} holds ${account.currency}, not ${CURRENCY}: use another LEDGER_NAME`);
      }
      ids[i - 1] = account.id;
    }
  }

  // The transfers_ok rate in the summary is over the whole run, setup included: for the rate of
  // the transfer phase alone, divide transfers_ok's count by DURATION.
  console.log(
    `ledger ${LEDGER}: ${ACCOUNTS} accounts (${ACCOUNTS - taken} opened, ${taken} reused) ` +
      `in ${((Date.now() - setupStarted) / 1000).toFixed(1)}s; ` +
      `${VUS} VUs for ${DURATION}${HOT_ACCOUNT ? ', hot account ' + accountCode(1) : ''}`,
  );
  // Transfers need a writer key (admins manage ledgers and accounts; writers move money).
  let writerKey = WRITER_KEY;
  if (!writerKey) {
    const key = http.post(
      `${BASE_URL}/v1/api-keys`,
      JSON.stringify({ name: `k6 writer for ${LEDGER}`, role: 'writer', ledgers: [LEDGER] }),
      setupParams(true, 'create_api_key'),
    );
    if (key.status !== 201) fail(`creating a writer key failed: ${describe(key)}`);
    writerKey = key.json('token');
  }
  return { accounts: ids, writerKey };
}

function randomInt(n) {
  return Math.floor(Math.random() * n);
}

// 0.01 to 100.00 with two decimals, built from integer cents (no float formatting).
function randomAmount() {
  const cents = 1 + randomInt(10000);
  return `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}

let failuresLogged = 0;

export function transfer(data) {
  const ids = data.accounts;
  let debit;
  let credit;
  if (HOT_ACCOUNT) {
    credit = ids[0];
    debit = ids[1 + randomInt(ids.length - 1)];
  } else {
    const i = randomInt(ids.length);
    let j = randomInt(ids.length - 1);
    if (j >= i) j++;
    debit = ids[i];
    credit = ids[j];
  }

  const res = http.post(
    `${ledgerPath}/transfers`,
    JSON.stringify({
      debit_account_id: debit,
      credit_account_id: credit,
      amount: randomAmount(),
      currency: CURRENCY,
    }),
    { headers: headers(true, data.writerKey), tags: { op: 'transfer' } },
  );
  const ok = check(res, { 'transfer 201': (r) => r.status === 201 });
  if (ok) {
    transfersOk.add(1);
  } else {
    transfersFailed.add(1);
    if (failuresLogged < 3) {
      failuresLogged++;
      console.warn(`transfer failed: ${describe(res)}`);
    }
  }
}

export default transfer;

export function handleSummary(data) {
  return summaryOutputs(data, __ENV.SUMMARY_NAME || 'summary-transfers', `ledger k6: transfers${HOT_ACCOUNT ? ' (hot account)' : ''}`, [
    ['service', BASE_URL],
    ['ledger', LEDGER],
    ['accounts', ACCOUNTS],
    ['VUs', VUS],
    ['duration', DURATION],
  ]);
}
