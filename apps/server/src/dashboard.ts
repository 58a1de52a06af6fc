// The dashboard is one self-contained page (inline CSS, JS and SVG; no external assets, no
// framework) so it works offline, behind strict proxies, and under a CSP that allows only this server.
// Every value from the API is put into the page with textContent or setAttribute, never as HTML.

const STYLE = `
:root { --bg:#f6f7f9; --fg:#1c2330; --muted:#6a7383; --card:#fff; --line:#dde1e7; --ok:#1a7f37; --warn:#b26b00; --bad:#c9252d; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; align-items:baseline; gap:16px; padding:14px 24px; background:#101826; color:#fff; }
header h1 { margin:0; font-size:18px; font-weight:600; }
header .sub { color:#aab3c2; font-size:13px; }
header #ready { margin-left:auto; font-weight:600; }
main { padding:16px 24px 40px; max-width:1280px; }
section { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 16px; margin-bottom:16px; }
h2 { margin:0 0 10px; font-size:15px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:500; font-size:12px; text-transform:uppercase; letter-spacing:.03em; }
td.num { font-variant-numeric:tabular-nums; }
code { font:12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.state { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; color:#fff; white-space:nowrap; }
.state.in-sync { background:var(--ok); } .state.lagging { background:var(--warn); } .state.failing { background:var(--bad); } .state.starting, .state.waiting { background:var(--muted); }
.err { color:var(--bad); }
.muted { color:var(--muted); }
#notice { display:none; padding:12px 16px; border-radius:8px; margin-bottom:16px; background:#fff4e5; border:1px solid #f0c36d; }
#login { display:none; }
#login input { font:inherit; padding:5px 8px; width:320px; border:1px solid var(--line); border-radius:6px; }
#login button { font:inherit; padding:5px 12px; }
svg text { font:11px system-ui, sans-serif; fill:var(--muted); }
.legend span { display:inline-block; margin-right:14px; font-size:12px; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:4px; vertical-align:-1px; }
`;

const SCRIPT = `
'use strict';
const TOKEN_KEY = 'lstream-server-token';
const REFRESH_MS = 2000;
// A request still unanswered after this long is given up, so one hung request cannot stop the refreshes.
const REQUEST_TIMEOUT_MS = 15000;
const CHART_WINDOW_MS = 5 * 60 * 1000;
const COLORS = ['#2f6fde', '#d9480f', '#2b8a3e', '#862e9c', '#c2255c', '#1098ad', '#5c940d', '#e67700'];
const SVG_NS = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = tag.startsWith('svg:') ? document.createElementNS(SVG_NS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  for (const c of children) if (c !== undefined && c !== null) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const STATE_TEXT = { 'in-sync': 'in sync', lagging: 'lagging', failing: 'failing', starting: 'starting', waiting: 'waiting for the database file' };
function fmtMs(ms) {
  if (ms < 1000) return ms + ' ms';
  if (ms < 120000) return (ms / 1000).toFixed(1) + ' s';
  return Math.round(ms / 60000) + ' min';
}
function ago(iso) {
  if (!iso) return 'never';
  return fmtMs(Math.max(0, Date.now() - Date.parse(iso))) + ' ago';
}
function bytes(n) {
  if (n < 1024) return n + ' B';
  if (n < 1048576) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1048576).toFixed(1) + ' MiB';
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: 'Bearer ' + token } : {};
}

async function api(path) {
  const res = await fetch(path, { headers: authHeaders(), cache: 'no-store', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  if (res.status === 401) throw Object.assign(new Error('a token is required'), { auth: true });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.status + ' ' + res.statusText);
  return body;
}

function notice(text) {
  $('notice').style.display = text ? 'block' : 'none';
  $('notice').textContent = text || '';
}

function renderDatabases(dbs) {
  const body = $('dbs');
  body.replaceChildren();
  for (const db of dbs) {
    const head = el('tr', { 'data-db': db.name },
      el('td', { colspan: 8 },
        el('strong', {}, db.name), ' ', el('span', { class: 'muted' }, db.path), ' ',
        db.open ? el('code', {}, db.position || 'no position yet') : el('span', { class: 'muted' }, 'opening…'),
        db.lastError ? el('div', { class: 'err' }, 'database sync error: ' + db.lastError) : null));
    body.append(head);
    for (const r of db.replicas) {
      body.append(el('tr', { 'data-db': db.name, 'data-replica': r.name, 'data-state': r.state },
        el('td', {}, '\\u2003', r.name, ' ', el('span', { class: 'muted' }, r.type)),
        el('td', {}, el('span', { class: 'state ' + r.state }, STATE_TEXT[r.state] || r.state)),
        el('td', { class: 'num' }, fmtMs(r.lagMs)),
        el('td', {}, ago(r.lastSyncAt)),
        el('td', {}, el('code', {}, r.position || '–')),
        el('td', { class: 'num' }, r.generationCount),
        el('td', { class: 'num' }, r.snapshotCount),
        el('td', { class: r.lastError || r.listError ? 'err' : 'muted' }, r.lastError || (r.listError ? 'listing: ' + r.listError : '–'))));
    }
  }
}

function renderLag(lag) {
  const svg = $('lag-chart');
  svg.replaceChildren();
  const W = 900, H = 220, L = 56, R = 10, T = 10, B = 24;
  const now = Date.now(), from = now - CHART_WINDOW_MS;
  let max = 1000;
  for (const s of lag.series) for (const [t, v] of s.samples) if (t >= from) max = Math.max(max, v);
  max *= 1.1;
  const x = (t) => L + ((t - from) / CHART_WINDOW_MS) * (W - L - R);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (max / 4) * i;
    svg.append(el('svg:line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#eef0f3' }));
    svg.append(el('svg:text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtMs(Math.round(v))));
  }
  for (let m = 0; m <= 5; m++) {
    const t = from + m * 60000;
    svg.append(el('svg:text', { x: x(t), y: H - 6, 'text-anchor': 'middle' }, m === 5 ? 'now' : '-' + (5 - m) + ' min'));
  }
  const legend = $('lag-legend');
  legend.replaceChildren();
  lag.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.samples.filter(([t]) => t >= from).map(([t, v]) => x(t).toFixed(1) + ',' + y(v).toFixed(1));
    if (s.lagLimitMs <= max) svg.append(el('svg:line', { x1: L, x2: W - R, y1: y(s.lagLimitMs), y2: y(s.lagLimitMs), stroke: color, 'stroke-dasharray': '4 4', 'stroke-opacity': 0.5 }));
    svg.append(el('svg:polyline', { points: pts.join(' '), fill: 'none', stroke: color, 'stroke-width': 2, 'data-series': s.db + '/' + s.replica, 'data-points': pts.length }));
    legend.append(el('span', {}, el('i', { style: 'background:' + color }), s.db + ' → ' + s.replica));
  });
}

function renderTimeline(dbs) {
  const svg = $('timeline');
  svg.replaceChildren();
  const rows = [];
  for (const db of dbs) for (const r of db.replicas) rows.push({ label: db.name + ' → ' + r.name, gens: r.generations });
  let first = Infinity;
  for (const row of rows) for (const g of row.gens) for (const s of g.snapshots) first = Math.min(first, Date.parse(s.createdAt));
  const now = Date.now();
  if (!isFinite(first)) first = now - 3600000;
  const span = Math.max(now - first, 60000) * 1.05;
  const W = 900, L = 180, R = 10, ROW = 28, H = Math.max(1, rows.length) * ROW + 24;
  svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  svg.setAttribute('height', H);
  const x = (t) => L + ((t - (now - span)) / span) * (W - L - R);
  rows.forEach((row, i) => {
    const cy = i * ROW + 14;
    svg.append(el('svg:text', { x: 0, y: cy + 4 }, row.label));
    svg.append(el('svg:line', { x1: L, x2: W - R, y1: cy, y2: cy, stroke: '#eef0f3' }));
    row.gens.forEach((g, gi) => {
      const color = COLORS[gi % COLORS.length];
      const times = g.snapshots.map((s) => Date.parse(s.createdAt));
      if (times.length > 1) svg.append(el('svg:line', { x1: x(times[0]), x2: x(times[times.length - 1]), y1: cy, y2: cy, stroke: color, 'stroke-width': 3, 'stroke-opacity': 0.35 }));
      for (const s of g.snapshots) {
        const c = el('svg:circle', { cx: x(Date.parse(s.createdAt)), cy, r: 5, fill: color, 'data-snapshot': g.id + '/' + s.index });
        c.append(el('svg:title', {}, 'generation ' + g.id + ', snapshot at index ' + s.index + ', ' + bytes(s.size) + ', ' + s.createdAt));
        svg.append(c);
      }
    });
  });
  const fmt = (t) => new Date(t).toLocaleTimeString();
  svg.append(el('svg:text', { x: L, y: H - 4 }, fmt(now - span)));
  svg.append(el('svg:text', { x: W - R, y: H - 4, 'text-anchor': 'end' }, 'now'));
}

function renderErrors(errors) {
  const list = $('errors');
  list.replaceChildren();
  if (errors.length === 0) list.append(el('li', { class: 'muted' }, 'none'));
  for (const e of errors.slice().reverse()) {
    list.append(el('li', {}, el('span', { class: 'muted' }, new Date(e.at).toLocaleTimeString() + ' '),
      e.db + (e.replica ? ' → ' + e.replica : '') + ': ', el('span', { class: 'err' }, e.message)));
  }
}

async function refresh() {
  try {
    // With the token, /readyz also says why the server is not ready.
    const ready = await fetch('/readyz', { headers: authHeaders(), cache: 'no-store', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    $('ready').textContent = ready.ok ? 'ready' : 'not ready';
    $('ready').style.color = ready.ok ? '#8ce99a' : '#ffa8a8';
    $('ready').title = ready.ok ? '' : await ready.text();
    const [dbs, lag, errors] = await Promise.all([api('/api/v1/databases'), api('/api/v1/lag'), api('/api/v1/errors')]);
    $('login').style.display = 'none';
    notice('');
    renderDatabases(dbs.databases);
    renderLag(lag);
    renderTimeline(dbs.databases);
    renderErrors(errors.errors);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (err) {
    if (err.auth) {
      $('login').style.display = 'block';
      notice(sessionStorage.getItem(TOKEN_KEY) ? 'The token was refused; enter it again.' : '');
    } else {
      notice('Cannot load the status: ' + err.message);
    }
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
  $('token').value = '';
});
refresh();
`;

/** The dashboard page served at `/`. */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lstream-server</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>lstream-server</h1><span class="sub" id="updated">loading…</span><span id="ready"></span></header>
<main>
<div id="notice"></div>
<section id="login"><form><h2>API token</h2>
<p class="muted">This server requires a bearer token for its API. It is kept in this tab's session storage only.</p>
<input id="token" type="password" autocomplete="off" placeholder="token"> <button type="submit">Use token</button></form></section>
<section><h2>Databases and replicas</h2>
<table><thead><tr><th>replica</th><th>state</th><th>lag</th><th>last sync</th><th>position</th><th>generations</th><th>snapshots</th><th>last error</th></tr></thead>
<tbody id="dbs"></tbody></table></section>
<section><h2>Replication lag, last 5 minutes</h2>
<svg id="lag-chart" viewBox="0 0 900 220" width="100%" height="220" role="img" aria-label="replication lag chart"></svg>
<div class="legend" id="lag-legend"></div></section>
<section><h2>Generations and snapshots</h2>
<svg id="timeline" viewBox="0 0 900 52" width="100%" height="52" role="img" aria-label="snapshots timeline"></svg></section>
<section><h2>Recent errors</h2><ul id="errors"></ul></section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
