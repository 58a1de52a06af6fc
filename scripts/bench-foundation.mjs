// lstream foundation benchmarks (run by bench.mjs). Prints one JSON document: throughput of our streaming paths next to their
// physical floor measured in the same run (the lz4 CLI, SQLite's own checkpoint), and the ratios.
// Usage: node scripts/bench-foundation.mjs   (data is generated once under $LSTREAM_BENCH_DIR, default /tmp/lstream-bench)
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const MiB = 1024 * 1024;
const RUNS = Number(process.env.LSTREAM_BENCH_RUNS ?? 5);
const dir = process.env.LSTREAM_BENCH_DIR ?? '/tmp/lstream-bench';
const worker = fileURLToPath(new URL('./bench-worker.mjs', import.meta.url));
const log = (s) => process.stderr.write(`${s}\n`);
await mkdir(dir, { recursive: true });

/** A database of about `mib` MiB of realistic pages: JSON text, integers, random blobs, an index. */
function makeDatabase(path, mib) {
  const db = new Database(path);
  db.pragma('journal_mode = wal');
  db.exec('CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, kind INTEGER, at INTEGER, payload TEXT, tag BLOB)');
  db.exec('CREATE INDEX IF NOT EXISTS events_kind_at ON events(kind, at)');
  const ins = db.prepare('INSERT INTO events(kind, at, payload, tag) VALUES (?, ?, ?, randomblob(16))');
  let i = 0;
  while (db.pragma('page_count', { simple: true }) * db.pragma('page_size', { simple: true }) < mib * MiB) {
    db.transaction(() => {
      for (let j = 0; j < 5000; j++, i++) {
        ins.run(i % 17, 1_700_000_000 + i * 13, JSON.stringify({ user: `user-${i % 977}`, action: ['view', 'click', 'buy', 'share'][i % 4], path: `/items/${i % 5003}`, ms: (i * 7919) % 1000 }));
      }
    })();
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

function worker_(op, input, output) {
  const r = spawnSync(process.execPath, [worker, op, input, ...(output ? [output] : [])], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${op} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function timeCommand(cmd, args) {
  const t0 = process.hrtime.bigint();
  execFileSync(cmd, args, { stdio: 'ignore' });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const best = (xs) => Math.min(...xs);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
function summary(bytes, seconds, rss) {
  return { mibPerSec: round(bytes / MiB / best(seconds)), medianMibPerSec: round(bytes / MiB / median(seconds)), ...(rss ? { peakRssMiB: round(Math.max(...rss)) } : {}) };
}

// --- LZ4 on 64 MiB of real SQLite pages -------------------------------------------------------------
const pages = join(dir, 'pages-64m.db');
if (!existsSync(pages)) {
  log('generating 64 MiB of SQLite pages...');
  const full = join(dir, 'pages-src.db');
  await rm(full, { force: true });
  makeDatabase(full, 66);
  // Exactly 64 MiB of the file's pages.
  execFileSync('head', ['-c', String(64 * MiB), full], { stdio: ['ignore', (await import('node:fs')).openSync(pages, 'w'), 'inherit'] });
  await rm(full, { force: true });
}
const size = (await stat(pages)).size;
const enc = { ours: [], oursRss: [], cli: [] };
const dec = { ours: [], oursRss: [], pipeline: [], pipelineRss: [], cli: [] };
const oursLz4 = join(dir, 'ours.lz4');
const cliLz4 = join(dir, 'cli.lz4');
log(`lz4: ${RUNS} runs each on ${size / MiB} MiB`);
// Every run writes a new file: overwriting one (O_TRUNC) makes ext4 flush the old file's data on
// close, a cost that depends on the disk's mood rather than on either program.
const fresh = (...paths) => Promise.all(paths.map((p) => rm(p, { force: true })));
for (let r = 0; r < RUNS; r++) {
  await fresh(oursLz4, cliLz4, join(dir, 'ours.out'), join(dir, 'ours-pipeline.out'), join(dir, 'cli.out'));
  const e = worker_('lz4-encode', pages, oursLz4);
  enc.ours.push(e.seconds);
  enc.oursRss.push(e.maxRssMiB);
  enc.cli.push(timeCommand('lz4', ['-q', '-f', '-1', pages, cliLz4]));
  const d = worker_('lz4-decode', oursLz4, join(dir, 'ours.out'));
  dec.ours.push(d.seconds);
  dec.oursRss.push(d.maxRssMiB);
  dec.cli.push(timeCommand('lz4', ['-q', '-f', '-d', cliLz4, join(dir, 'cli.out')]));
  const dp = worker_('lz4-decode-pipeline', oursLz4, join(dir, 'ours-pipeline.out'));
  dec.pipeline.push(dp.seconds);
  dec.pipelineRss.push(dp.maxRssMiB);
}
for (const out of ['ours.out', 'ours-pipeline.out']) {
  if (spawnSync('cmp', ['-s', join(dir, out), pages]).status !== 0) throw new Error(`our LZ4 decode (${out}) differs from the input`);
}
const ratioSize = (await stat(oursLz4)).size;
const cliSize = (await stat(cliLz4)).size;

// --- WAL apply vs SQLite checkpoint ----------------------------------------------------------------
const walDb = join(dir, 'wal-src.db');
if (!existsSync(`${walDb}.wal`)) {
  log('generating a database with a ~64 MiB WAL...');
  await rm(walDb, { force: true });
  await rm(`${walDb}-wal`, { force: true });
  makeDatabase(walDb, 16);
  // A writer in its own process leaves its WAL behind (killed before a close would checkpoint it).
  spawnSync(process.execPath, [fileURLToPath(new URL('./bench-wal-writer.mjs', import.meta.url)), walDb, String(64 * MiB)], { stdio: 'inherit' });
  await copyFile(`${walDb}-wal`, `${walDb}.wal`);
}
const walSize = (await stat(`${walDb}.wal`)).size;
const apply = { ours: [], oursRss: [], sqlite: [], sqliteRss: [] };
log(`wal apply: ${RUNS} runs each on a ${round(walSize / MiB)} MiB WAL`);
for (let r = 0; r < RUNS; r++) {
  const a = join(dir, 'apply-ours.db');
  await copyFile(walDb, a);
  const o = worker_('wal-apply', `${walDb}.wal`, a);
  apply.ours.push(o.seconds);
  apply.oursRss.push(o.maxRssMiB);
  const b = join(dir, 'apply-sqlite.db');
  await copyFile(walDb, b);
  await copyFile(`${walDb}.wal`, `${b}-wal`);
  await rm(`${b}-shm`, { force: true });
  const s = worker_('sqlite-checkpoint', b);
  apply.sqlite.push(s.seconds);
  apply.sqliteRss.push(s.maxRssMiB);
  if (spawnSync('cmp', ['-s', a, b]).status !== 0) throw new Error('our apply and SQLite checkpoint produced different files');
}

const result = {
  machine: { cpus: (await import('node:os')).cpus().length, node: process.version, runs: RUNS },
  lz4: {
    inputMiB: size / MiB,
    encode: { ours: summary(size, enc.ours, enc.oursRss), lz4Cli1: summary(size, enc.cli), ratio: round(best(enc.cli) / best(enc.ours), 2) },
    // ours: restore's way of writing decoded blocks (positional writes, blocks given back once written);
    // oursPipeline: stream.pipeline into fs.createWriteStream, as any stream consumer would.
    decode: {
      ours: summary(size, dec.ours, dec.oursRss),
      oursPipeline: summary(size, dec.pipeline, dec.pipelineRss),
      lz4CliD: summary(size, dec.cli),
      ratio: round(best(dec.cli) / best(dec.ours), 2),
      ratioPipeline: round(best(dec.cli) / best(dec.pipeline), 2),
    },
    compressedMiB: { ours: round(ratioSize / MiB), lz4Cli1: round(cliSize / MiB) },
  },
  walApply: {
    walMiB: round(walSize / MiB),
    ours: summary(walSize, apply.ours, apply.oursRss),
    sqliteCheckpoint: summary(walSize, apply.sqlite, apply.sqliteRss),
    ratio: round(best(apply.sqlite) / best(apply.ours), 2),
  },
  note: 'ratio = floor time / our time (>= 1 means at least as fast as the floor); throughput from the best of the runs',
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
