// k6 open-model load for load/bench.sh: single transfers at a constant arrival rate (not a closed
// loop), so latency is measured at a fixed offered load, as a bank's traffic arrives.
//
//   RATE=1800 DURATION=20s BASE_URL=… LEDGER=bench WRITER_KEY=… ACCOUNTS_FILE=accounts.txt \
//     SUMMARY_FILE=out.json k6 run load/k6/arrival.js
//
// Every request carries its own Idempotency-Key. The summary file holds k6's end-of-test data;
// `dropped_iterations` > 0 means the service did not keep up with RATE.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const LEDGER = __ENV.LEDGER || 'bench';
const RATE = Number(__ENV.RATE || '1000');
const ACCOUNTS = open(__ENV.ACCOUNTS_FILE).split('\n').filter((line) => line.length > 0);
const transfersOk = new Counter('transfers_ok');

export const options = {
  discardResponseBodies: true,
  scenarios: {
    arrival: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      preAllocatedVUs: Number(__ENV.VUS || '64'),
      maxVUs: Number(__ENV.MAX_VUS || '256'),
    },
  },
  summaryTrendStats: ['med', 'p(90)', 'p(99)', 'max'],
};

const headers = {
  'Content-Type': 'application/json',
  Authorization: `Bearer ${__ENV.WRITER_KEY}`,
};
const url = `${BASE_URL}/v1/ledgers/${LEDGER}/transfers`;

export default function () {
  const debit = Math.floor(Math.random() * ACCOUNTS.length);
  let credit = Math.floor(Math.random() * (ACCOUNTS.length - 1));
  if (credit >= debit) credit += 1;
  const body = JSON.stringify({
    debit_account_id: ACCOUNTS[debit],
    credit_account_id: ACCOUNTS[credit],
    amount: `${Math.floor(Math.random() * 100)}.${String(1 + Math.floor(Math.random() * 99)).padStart(2, '0')}`,
    currency: 'EUR',
  });
  headers['Idempotency-Key'] = `k6-${__VU}-${__ITER}-${Math.random().toString(36).slice(2)}`;
  const response = http.post(url, body, { headers });
  if (check(response, { 'transfer created': (r) => r.status === 201 })) transfersOk.add(1);
}

export function handleSummary(data) {
  const out = { stdout: '' };
  if (__ENV.SUMMARY_FILE) out[__ENV.SUMMARY_FILE] = JSON.stringify(data);
  return out;
}
