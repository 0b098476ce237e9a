// End-of-test reports for handleSummary, self-contained (no jslib import, no network): a text
// summary for stdout, a single-file HTML report and the JSON summary data.
//
//   import { summaryOutputs } from './report.js';
//   export function handleSummary(data) { return summaryOutputs(data, 'summary-uniform'); }
//
// Writes SUMMARY_DIR/<name>.html and SUMMARY_DIR/<name>.json (SUMMARY_DIR defaults to the current
// directory; SUMMARY_DIR=none writes no files). setup()'s data holds API keys, so it is left out.

function escapeHtml(value) {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function round(value, digits) {
  if (typeof value !== 'number' || !Number.isFinite(value)) return String(value);
  return value.toFixed(digits);
}

function formatDuration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return String(ms);
  if (ms >= 60000) return `${round(ms / 60000, 2)}m`;
  if (ms >= 1000) return `${round(ms / 1000, 2)}s`;
  if (ms >= 1) return `${round(ms, 2)}ms`;
  return `${round(ms * 1000, 2)}µs`;
}

function formatBytes(n) {
  if (n >= 1e9) return `${round(n / 1e9, 2)} GB`;
  if (n >= 1e6) return `${round(n / 1e6, 2)} MB`;
  if (n >= 1e3) return `${round(n / 1e3, 2)} kB`;
  return `${n} B`;
}

function formatValue(metric, value) {
  if (metric.contains === 'time') return formatDuration(value);
  if (metric.contains === 'data') return formatBytes(value);
  return Number.isInteger(value) ? String(value) : round(value, 3);
}

function formatRate(metric, rate) {
  return metric.contains === 'data' ? `${formatBytes(rate)}/s` : `${round(rate, 2)}/s`;
}

// Trend columns: the configured summaryTrendStats, in order.
function trendStats(data) {
  const configured = data.options && data.options.summaryTrendStats;
  return configured && configured.length ? configured : ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)'];
}

function allChecks(group, out) {
  for (const c of group.checks || []) out.push({ group: group.path || '', ...c });
  for (const g of group.groups || []) allChecks(g, out);
  return out;
}

function thresholdRows(data) {
  const rows = [];
  for (const name of Object.keys(data.metrics).sort()) {
    const t = data.metrics[name].thresholds;
    if (!t) continue;
    for (const expr of Object.keys(t)) rows.push({ metric: name, expr, ok: t[expr].ok });
  }
  return rows;
}

// A metric's value in one line, as k6's own summary shows it.
function metricLine(metric, stats) {
  const v = metric.values;
  switch (metric.type) {
    case 'trend':
      return stats.map((s) => `${s}=${formatValue(metric, v[s])}`).join(' ');
    case 'counter':
      return `${formatValue(metric, v.count)} ${formatRate(metric, v.rate)}`;
    case 'rate':
      return `${round(v.rate * 100, 2)}% (${v.passes} of ${v.passes + v.fails})`;
    case 'gauge':
      return `${formatValue(metric, v.value)} (min ${formatValue(metric, v.min)}, max ${formatValue(metric, v.max)})`;
    default:
      return JSON.stringify(v);
  }
}

export function verdict(data) {
  const failedThresholds = thresholdRows(data).filter((r) => !r.ok).length;
  const failedChecks = allChecks(data.root_group, []).reduce((n, c) => n + c.fails, 0);
  return { ok: failedThresholds === 0 && failedChecks === 0, failedThresholds, failedChecks };
}

export function textReport(data, title) {
  const stats = trendStats(data);
  const lines = [];
  const v = verdict(data);
  lines.push('');
  lines.push(`  ${title || 'k6 run'}: ${v.ok ? 'PASSED' : 'FAILED'} (${v.failedThresholds} thresholds crossed, ${v.failedChecks} checks failed) in ${formatDuration(data.state.testRunDurationMs)}`);
  const thresholds = thresholdRows(data);
  if (thresholds.length) {
    lines.push('', '  THRESHOLDS');
    for (const r of thresholds) lines.push(`    ${r.ok ? '✓' : '✗'} ${r.metric}: '${r.expr}'`);
  }
  const checks = allChecks(data.root_group, []);
  if (checks.length) {
    lines.push('', '  CHECKS');
    for (const c of checks) {
      lines.push(`    ${c.fails === 0 ? '✓' : '✗'} ${c.name}: ${c.passes} passed, ${c.fails} failed`);
    }
  }
  lines.push('', '  METRICS');
  const names = Object.keys(data.metrics).sort();
  const width = Math.min(60, Math.max(...names.map((n) => n.length)) + 2);
  for (const name of names) {
    lines.push(`    ${(name + ' ').padEnd(width, '.')} ${metricLine(data.metrics[name], stats)}`);
  }
  lines.push('');
  return lines.join('\n') + '\n';
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}
.meta{color:#555}.verdict{display:inline-block;padding:.3em .8em;border-radius:4px;font-weight:600;color:#fff}
.pass{background:#2e7d32}.fail{background:#c62828}
table{border-collapse:collapse;width:100%;margin-top:.5em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right;white-space:nowrap}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
tr.bad td{background:#fdecea}tr.sub td:first-child{padding-left:1.6em;color:#444}
code{font-family:ui-monospace,monospace;font-size:.95em}`;

function table(headers, rows) {
  const head = headers ? `<tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>` : '';
  const body = rows
    .map((r) => `<tr${r.cls && r.cls.trim() ? ` class="${r.cls.trim()}"` : ''}>${r.cells.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`)
    .join('\n');
  return `<table>\n${head}\n${body}\n</table>`;
}

export function htmlReport(data, title, details) {
  const stats = trendStats(data);
  const v = verdict(data);
  const names = Object.keys(data.metrics).sort();
  const ofType = (type) => names.filter((n) => data.metrics[n].type === type);
  const rowClass = (n) => `${n.includes('{') ? 'sub' : ''} ${Object.values(data.metrics[n].thresholds || {}).some((t) => !t.ok) ? 'bad' : ''}`;
  const parts = [];
  parts.push(`<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>`);
  parts.push(`<h1>${escapeHtml(title)}</h1>`);
  parts.push(`<p><span class="verdict ${v.ok ? 'pass' : 'fail'}">${v.ok ? 'PASSED' : 'FAILED'}</span> ` +
    `${v.failedThresholds} thresholds crossed, ${v.failedChecks} checks failed</p>`);
  const meta = [
    ['report written', new Date().toISOString()],
    ['test run duration', formatDuration(data.state.testRunDurationMs)],
    ...(details || []),
  ];
  parts.push(table(null, meta.map(([k, val]) => ({ cells: [k, val] }))));

  const thresholds = thresholdRows(data);
  if (thresholds.length) {
    parts.push('<h2>Thresholds</h2>');
    parts.push(table(['metric', 'threshold', 'result'], thresholds.map((r) => ({
      cls: r.ok ? '' : 'bad',
      cells: [r.metric, r.expr, r.ok ? 'passed' : 'crossed'],
    }))));
  }
  const checks = allChecks(data.root_group, []);
  if (checks.length) {
    parts.push('<h2>Checks</h2>');
    parts.push(table(['check', 'passed', 'failed', 'rate'], checks.map((c) => ({
      cls: c.fails ? 'bad' : '',
      cells: [c.name, c.passes, c.fails, `${round((100 * c.passes) / Math.max(1, c.passes + c.fails), 2)}%`],
    }))));
  }
  if (ofType('trend').length) {
    parts.push('<h2>Trends</h2>');
    parts.push(table(['metric', ...stats], ofType('trend').map((n) => ({
      cls: rowClass(n),
      cells: [n, ...stats.map((s) => formatValue(data.metrics[n], data.metrics[n].values[s]))],
    }))));
  }
  if (ofType('counter').length) {
    parts.push('<h2>Counters</h2>');
    parts.push(table(['metric', 'count', 'rate (over the whole run, setup included)'], ofType('counter').map((n) => ({
      cls: rowClass(n),
      cells: [n, formatValue(data.metrics[n], data.metrics[n].values.count), formatRate(data.metrics[n], data.metrics[n].values.rate)],
    }))));
  }
  if (ofType('rate').length) {
    parts.push('<h2>Rates</h2>');
    parts.push(table(['metric', 'rate', 'true', 'false'], ofType('rate').map((n) => ({
      cls: rowClass(n),
      cells: [n, `${round(data.metrics[n].values.rate * 100, 2)}%`, data.metrics[n].values.passes, data.metrics[n].values.fails],
    }))));
  }
  if (ofType('gauge').length) {
    parts.push('<h2>Gauges</h2>');
    parts.push(table(['metric', 'value', 'min', 'max'], ofType('gauge').map((n) => ({
      cls: rowClass(n),
      cells: [n, ...['value', 'min', 'max'].map((s) => formatValue(data.metrics[n], data.metrics[n].values[s]))],
    }))));
  }
  parts.push('<p class="meta">Written by <code>load/k6/report.js</code> from k6\'s end-of-test data (the JSON file next to this one).</p>');
  parts.push('</body></html>\n');
  return parts.join('\n');
}

// What handleSummary returns: the text summary on stdout, and <name>.html and <name>.json in
// SUMMARY_DIR. `details`: extra [label, value] rows for the HTML report's header.
export function summaryOutputs(data, name, title, details) {
  const heading = title || name;
  const out = { stdout: textReport(data, heading) };
  const dir = __ENV.SUMMARY_DIR === undefined || __ENV.SUMMARY_DIR === '' ? '.' : __ENV.SUMMARY_DIR;
  if (dir !== 'none') {
    const base = `${dir.replace(/\/+$/, '')}/${name}`;
    const redacted = { ...data, setup_data: '(left out: it holds API keys)' };
    out[`${base}.json`] = JSON.stringify(redacted, null, 2);
    out[`${base}.html`] = htmlReport(data, heading, details);
    out.stdout += `  reports: ${base}.html, ${base}.json\n\n`;
  }
  return out;
}
