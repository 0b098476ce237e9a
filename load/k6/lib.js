// Shared helpers of the k6 scenarios (scenarios.js): environment, headers, amounts, and the
// setup steps (ledger, accounts, API keys). No network access beyond BASE_URL.
import http from 'k6/http';
import { fail } from 'k6';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const ADMIN_KEY = __ENV.LEDGER_ADMIN_KEY || __ENV.LEDGER_API_KEY || '';
export const LEDGER = __ENV.LEDGER_NAME || 'load';
export const CURRENCY = __ENV.CURRENCY || 'EUR';
export const PAGE_SIZE = 1000; // the service's largest page
const SETUP_BATCH = 50; // account creations sent in parallel during setup

export const ledgerPath = `${BASE_URL}/v1/ledgers/${encodeURIComponent(LEDGER)}`;

export function positiveInt(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return value;
}

// A fraction from 0 to 1, given as a percentage (0-100).
export function percent(name, fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback / 100;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0 || value > 100) {
    throw new Error(`${name} must be a percentage from 0 to 100, got ${JSON.stringify(raw)}`);
  }
  return value / 100;
}

// k6 durations as seconds ("90s", "1m30s", "500ms", "2h"); a bare number is seconds.
export function durationSeconds(text) {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let total = 0;
  let consumed = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
    consumed += m[0].length;
  }
  if (consumed !== text.length || consumed === 0) throw new Error(`not a k6 duration: ${JSON.stringify(text)}`);
  return total;
}

export function uuidv4() {
  if (typeof crypto !== 'undefined' && typeof crypto.randomUUID === 'function') {
    return crypto.randomUUID();
  }
  return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, (c) => {
    const r = Math.floor(Math.random() * 16);
    return (c === 'x' ? r : (r & 0x3) | 0x8).toString(16);
  });
}

// Request headers. `idempotencyKey`: true for a fresh UUID, a string for that key, falsy for none.
export function headers(key, idempotencyKey) {
  const h = { Accept: 'application/json' };
  if (idempotencyKey) {
    h['Content-Type'] = 'application/json';
    h['Idempotency-Key'] = idempotencyKey === true ? uuidv4() : idempotencyKey;
  }
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

// Setup requests: 200, 201 and 409 (already there) are all expected answers, so the tolerated
// 409s do not count in http_req_failed.
export function setupParams(post, op) {
  return {
    headers: headers(ADMIN_KEY, post),
    tags: { op },
    responseCallback: http.expectedStatuses(200, 201, 409),
  };
}

export function problemCode(res) {
  try {
    return res.json('code');
  } catch (_) {
    return undefined;
  }
}

export function describe(res) {
  return `${res.request.method} ${res.url} -> ${res.status} ${res.error || ''} ${String(res.body).slice(0, 300)}`;
}

export function randomInt(n) {
  return Math.floor(Math.random() * n);
}

// Amounts are built from integer cents, never formatted from floats (CURRENCY has 2 decimals).
export function formatCents(cents) {
  const sign = cents < 0 ? '-' : '';
  const abs = Math.abs(cents);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

// "12.34", "-0.50", "7" -> integer cents (exact for the 2-decimal strings the service returns).
export function parseCents(text) {
  const m = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(String(text));
  if (!m) throw new Error(`not a 2-decimal amount: ${JSON.stringify(text)}`);
  const cents = Number(m[2]) * 100 + Number((m[3] || '0').padEnd(2, '0'));
  return m[1] === '-' ? -cents : cents;
}

// 0.01 to 100.00.
export function randomAmount() {
  return formatCents(1 + randomInt(10000));
}

// Two different random indexes below n (n >= 2).
export function randomPair(n) {
  const i = randomInt(n);
  let j = randomInt(n - 1);
  if (j >= i) j++;
  return [i, j];
}

export function warnAboutUsageReport() {
  if (!['true', '1'].includes(String(__ENV.K6_NO_USAGE_REPORT || '').toLowerCase())) {
    console.warn(
      'K6_NO_USAGE_REPORT is not true: unless --no-usage-report was given, k6 sends an anonymous ' +
        'usage report to Grafana. Set K6_NO_USAGE_REPORT=true to keep the run offline.',
    );
  }
}

export function checkReady() {
  const ready = http.get(`${BASE_URL}/health/ready`, { tags: { op: 'ready' } });
  if (ready.status !== 200) fail(`service not ready: ${describe(ready)}`);
  if (!ADMIN_KEY) fail('LEDGER_ADMIN_KEY is not set (the admin key: see load/README.md)');
}

export function createLedger() {
  const created = http.post(`${BASE_URL}/v1/ledgers`, JSON.stringify({ name: LEDGER }), setupParams(true, 'create_ledger'));
  if (!(created.status === 201 || (created.status === 409 && problemCode(created) === 'ledger_exists'))) {
    fail(`creating ledger ${LEDGER} failed: ${describe(created)}`);
  }
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

// Opens the accounts `codes` (unconstrained, so nothing needs funding), or reuses those that
// exist (409 account_code_taken). Returns { ids, opened, reused, maxSeq }.
export function openAccounts(codes, normalSide) {
  const ids = new Array(codes.length);
  let taken = 0;
  let maxSeq = 0;
  for (let start = 0; start < codes.length; start += SETUP_BATCH) {
    const batch = [];
    for (let i = start; i < start + SETUP_BATCH && i < codes.length; i++) {
      batch.push([
        'POST',
        `${ledgerPath}/accounts`,
        JSON.stringify({
          code: codes[i],
          currency: CURRENCY,
          normal_side: normalSide || 'credit',
          debits_must_not_exceed_credits: false,
        }),
        setupParams(true, 'create_account'),
      ]);
    }
    http.batch(batch).forEach((res, k) => {
      const i = start + k;
      if (res.status === 201) {
        ids[i] = res.json('id');
        maxSeq = Math.max(maxSeq, res.json('journal_seq'));
      } else if (res.status === 409 && problemCode(res) === 'account_code_taken') {
        taken++;
      } else {
        fail(`opening account ${codes[i]} failed: ${describe(res)}`);
      }
    });
  }
  if (taken > 0) {
    const byCode = listAccounts();
    codes.forEach((code, i) => {
      if (ids[i]) return;
      const account = byCode[code];
      if (!account) fail(`account ${code} exists but is not listed`);
      if (account.currency !== CURRENCY) {
        fail(`account ${code} holds ${account.currency}, not ${CURRENCY}: use another LEDGER_NAME`);
      }
      ids[i] = account.id;
      maxSeq = Math.max(maxSeq, account.journal_seq);
    });
  }
  return { ids, opened: codes.length - taken, reused: taken, maxSeq };
}

// An API key of `role` restricted to LEDGER (the token is only in setup's data, which the
// summary files leave out).
export function createKey(role) {
  const key = http.post(
    `${BASE_URL}/v1/api-keys`,
    JSON.stringify({ name: `k6 ${role} for ${LEDGER}`, role, ledgers: [LEDGER] }),
    setupParams(true, 'create_api_key'),
  );
  if (key.status !== 201) fail(`creating a ${role} key failed: ${describe(key)}`);
  return key.json('token');
}
