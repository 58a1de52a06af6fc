// lstream-server benchmark (run by bench.mjs as section `server`): 4 databases replicate under a
// steady writer each, and the server's own event-loop delay (p99, from /api/v1/status) and CPU per
// committed MiB of WAL are measured in steady state, next to the writers' own CPU per MiB they commit
// (the cost of producing the data, the reference the server's share is read against). Prints JSON.
//   LSTREAM_BENCH_SERVER_SECONDS   steady-state seconds measured (default 20; at least one 10 s window)
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const MiB = 1024 * 1024;
const DATABASES = 4;
const SECONDS = Math.max(12, Number(process.env.LSTREAM_BENCH_SERVER_SECONDS ?? 20));
/** Each writer commits ROWS_PER_COMMIT rows of ROW_BYTES every COMMIT_EVERY_MS: about 1 MiB/s of rows per database. */
const ROWS_PER_COMMIT = 50;
const ROW_BYTES = 1000;
const COMMIT_EVERY_MS = 50;
const dir = join(process.env.LSTREAM_BENCH_DIR ?? '/tmp/lstream-bench', 'server');
const serverBin = fileURLToPath(new URL('../apps/server/bin/lstream-server.js', import.meta.url));
const log = (s) => process.stderr.write(`${s}\n`);
const r2 = (x) => Math.round(x * 100) / 100;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (process.argv[2] === 'writer') {
  // The steady app: a commit every COMMIT_EVERY_MS until SIGTERM; prints its CPU and bytes at exit.
  const db = new Database(process.argv[3], { timeout: 10_000 });
  db.pragma('journal_mode = wal');
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)');
  const ins = db.prepare('INSERT INTO t (body) VALUES (randomblob(?))');
  const tx = db.transaction(() => {
    for (let i = 0; i < ROWS_PER_COMMIT; i++) ins.run(ROW_BYTES);
  });
  let stop = false;
  let commits = 0;
  process.on('SIGTERM', () => (stop = true));
  const cpu0 = process.cpuUsage();
  while (!stop) {
    tx();
    commits++;
    await sleep(COMMIT_EVERY_MS);
  }
  db.close();
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(JSON.stringify({ commits, rowBytes: commits * ROWS_PER_COMMIT * ROW_BYTES, cpuMs: (cpu.user + cpu.system) / 1000 }) + '\n');
  process.exit(0);
}

await rm(dir, { recursive: true, force: true });
await mkdir(dir, { recursive: true });
let config = 'addr: "127.0.0.1:0"\ndbs:\n';
for (let i = 0; i < DATABASES; i++) {
  config += `  - path: ${join(dir, `db${i}.db`)}\n    replicas:\n      - url: file://${join(dir, `replica${i}`)}\n        sync-interval: 1s\n`;
}
await writeFile(join(dir, 'lstream.yml'), config);

const server = spawn(process.execPath, [serverBin, '-config', join(dir, 'lstream.yml')], { stdio: ['ignore', 'pipe', 'inherit'] });
const serverExit = new Promise((r) => server.on('exit', (code) => r(code)));
const url = await new Promise((resolve, reject) => {
  createInterface({ input: server.stdout }).on('line', (line) => {
    const m = /msg=serving url=(\S+)/.exec(line);
    if (m) resolve(m[1]);
  });
  server.on('exit', (code) => reject(new Error(`lstream-server exited with ${code} before serving`)));
});
const status = async () => (await fetch(`${url}api/v1/status`)).json();

const script = fileURLToPath(import.meta.url);
const writers = [];
for (let i = 0; i < DATABASES; i++) {
  const w = spawn(process.execPath, [script, 'writer', join(dir, `db${i}.db`)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  w.stdout.setEncoding('utf8').on('data', (d) => (out += d));
  writers.push(new Promise((r) => w.on('exit', () => r(JSON.parse(out)))));
  writers[i].child = w;
}

log(`server: ${DATABASES} databases, each written ~${r2((ROWS_PER_COMMIT * ROW_BYTES * (1000 / COMMIT_EVERY_MS)) / MiB)} MiB/s of rows; warming up 5 s`);
await sleep(5_000);
const s0 = await status();
log(`server: measuring ${SECONDS} s`);
await sleep(SECONDS * 1000);
const s1 = await status();

for (const w of writers) w.child.kill('SIGTERM');
const ws = await Promise.all(writers);
server.kill('SIGTERM');
const code = await serverExit;
if (code !== 0) throw new Error(`lstream-server exited with ${code} after SIGTERM`);

const cpuMs = s1.cpuMs.user + s1.cpuMs.system - (s0.cpuMs.user + s0.cpuMs.system);
const walMiB = (s1.totals.walBytes - s0.totals.walBytes) / MiB;
const writerCpuMs = ws.reduce((n, w) => n + w.cpuMs, 0);
const writerMiB = ws.reduce((n, w) => n + w.rowBytes, 0) / MiB;
const result = {
  databases: DATABASES,
  seconds: SECONDS,
  committedWalMiB: r2(walMiB),
  committedWalMiBPerSecond: r2(walMiB / SECONDS),
  serverCpuMsPerCommittedMiB: r2(cpuMs / walMiB),
  serverCpuPercentOfOneCore: r2((cpuMs / (SECONDS * 1000)) * 100),
  writersCpuMsPerRowMiB: r2(writerCpuMs / writerMiB),
  eventLoopDelayMs: {
    // Beyond the monitor's 10 ms sampling period; the last complete 10 s window is pure steady state.
    steadyWindow: s1.eventLoopDelayLastWindowMs,
    sinceStart: s1.eventLoopDelayMs,
  },
  serverRssMiB: r2(s1.rssBytes / MiB),
  ratio: { serverCpuPerMiBVsWritersCpuPerMiB: r2(cpuMs / walMiB / (writerCpuMs / writerMiB)) },
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
