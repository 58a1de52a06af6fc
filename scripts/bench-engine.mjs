// lstream engine benchmarks (run by bench.mjs): replication lag, event-loop delay during a checkpoint,
// replicator CPU per 100 MiB of WAL, restore of a many-index replica and of a 1 GiB snapshot, and
// time to the first snapshot, each next to its physical floor measured in the same run. Prints JSON.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const MiB = 1024 * 1024;
const RUNS = Number(process.env.LSTREAM_BENCH_RUNS ?? 3);
const LAG_SECONDS = Number(process.env.LSTREAM_BENCH_LAG_SECONDS ?? 12);
const dir = process.env.LSTREAM_BENCH_DIR ?? '/tmp/lstream-bench';
const workerScript = fileURLToPath(new URL('./bench-engine-worker.mjs', import.meta.url));
const log = (s) => process.stderr.write(`${s}\n`);
const r2 = (x) => Math.round(x * 100) / 100;
const best = (xs) => Math.min(...xs);
await mkdir(dir, { recursive: true });

function worker(...args) {
  const r = spawnSync(process.execPath, [workerScript, ...args.map(String)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`bench worker ${args.join(' ')} failed (exit ${r.status})`);
  return JSON.parse(r.stdout);
}

function time(cmd, args) {
  const t0 = process.hrtime.bigint();
  execFileSync(cmd, args, { stdio: 'ignore' });
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** cp of a file, and cp followed by fsync of the copy (restore fsyncs; plain cp does not). */
async function cpFloor(file) {
  const copy = `${file}.cp`;
  // Restore writes its result past the page cache (direct I/O): read it in first, so cp copies from
  // memory in every run, as the floor should.
  execFileSync('cat', [file], { stdio: ['ignore', 'ignore', 'inherit'] });
  const cp = [];
  const cpSync = [];
  for (let i = 0; i < RUNS; i++) {
    await rm(copy, { force: true });
    cp.push(time('cp', [file, copy]));
    await rm(copy, { force: true });
    cpSync.push(time('sh', ['-c', `cp "${file}" "${copy}" && sync "${copy}"`]));
  }
  await rm(copy, { force: true });
  return { cpSeconds: r2(best(cp)), cpFsyncSeconds: r2(best(cpSync)) };
}

const result = { machine: { cpus: (await import('node:os')).cpus().length, node: process.version, runs: RUNS } };

// --- replication lag -------------------------------------------------------------------------------
result.lag = {};
for (const interval of [1000, 100, 0]) {
  log(`lag: writer commits every 50 ms, sync-interval ${interval} ms, ${LAG_SECONDS} s`);
  const r = worker('lag', interval, LAG_SECONDS);
  result.lag[`syncInterval${interval}ms`] = r;
}

// --- event-loop delay while a 40 MB WAL is checkpointed -------------------------------------------
log('event-loop delay: one 40 MB transaction, copied and checkpointed');
result.eventLoopDuringCheckpoint = worker('eld');

// --- many-index replica: CPU per 100 MiB of WAL, then restore vs cp --------------------------------
const many = join(dir, 'many-index');
log('replicating ~300 MiB of WAL (an app inserting rows) into ~200 indexes (CPU measured)');
const rep = worker('replicate-wal', 300, many, 192, 'grow');
const manyOut = join(dir, 'many-restored.db');
const manyRestores = [];
for (let i = 0; i < RUNS; i++) {
  log(`restore many-index replica, run ${i + 1}/${RUNS}`);
  manyRestores.push(worker('restore', join(many, 'replica'), manyOut));
}
const manyFloor = await cpFloor(manyOut);
const src = new Database(join(many, 'app.db'), { readonly: true });
const restored = new Database(manyOut, { readonly: true });
const same =
  JSON.stringify(src.prepare('SELECT count(*), sum(v), max(body) FROM churn').raw().get()) ===
  JSON.stringify(restored.prepare('SELECT count(*), sum(v), max(body) FROM churn').raw().get());
src.close();
restored.close();
if (!same) throw new Error('many-index restore differs from the source database');
result.replicatorCpu = { walMiB: rep.walMiB, indexes: rep.indexes, cpuSeconds: rep.cpuSeconds, cpuSecondsPer100MiB: rep.cpuSecondsPer100MiB, peakRssMiB: rep.maxRssMiB };
result.restoreManyIndex = {
  walMiB: rep.walMiB,
  indexes: rep.indexes,
  segments: manyRestores[0].segments,
  dbMiB: r2(manyRestores[0].dbBytes / MiB),
  seconds: r2(best(manyRestores.map((r) => r.seconds))),
  peakRssMiB: Math.max(...manyRestores.map((r) => r.maxRssMiB)),
  ...manyFloor,
  ratioToCp: r2(best(manyRestores.map((r) => r.seconds)) / manyFloor.cpSeconds),
  ratioToCpFsync: r2(best(manyRestores.map((r) => r.seconds)) / manyFloor.cpFsyncSeconds),
};
for (const f of [manyOut, `${manyOut}-wal`, `${manyOut}-shm`]) await rm(f, { force: true });

// --- 1 GiB database: first snapshot vs lz4 -1, snapshot-only restore vs cp -------------------------
const bigDir = join(dir, 'big');
await mkdir(bigDir, { recursive: true });
const big = join(bigDir, 'big.db');
if (!existsSync(big)) {
  log('generating a 1 GiB database (once)...');
  const db = new Database(`${big}.tmp`);
  db.pragma('journal_mode = wal');
  db.exec('CREATE TABLE events(id INTEGER PRIMARY KEY, kind INTEGER, at INTEGER, payload TEXT, tag BLOB)');
  db.exec('CREATE INDEX events_kind_at ON events(kind, at)');
  const ins = db.prepare('INSERT INTO events(kind, at, payload, tag) VALUES (?, ?, ?, randomblob(16))');
  let i = 0;
  while (db.pragma('page_count', { simple: true }) * 4096 < 1024 * MiB) {
    db.transaction(() => {
      for (let j = 0; j < 20000; j++, i++) {
        ins.run(i % 17, 1_700_000_000 + i * 13, JSON.stringify({ user: `user-${i % 977}`, action: ['view', 'click', 'buy', 'share'][i % 4], path: `/items/${i % 5003}`, ms: (i * 7919) % 1000 }));
      }
    })();
  }
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  execFileSync('mv', [`${big}.tmp`, big]);
}
const bigMiB = (await stat(big)).size / MiB;
const bigReplica = join(bigDir, 'replica');
const snaps = [];
const lz4 = [];
for (let i = 0; i < RUNS; i++) {
  log(`first snapshot of ${Math.round(bigMiB)} MiB, run ${i + 1}/${RUNS}`);
  snaps.push(worker('first-snapshot', big, bigReplica));
  lz4.push(time('lz4', ['-q', '-f', '-1', big, join(bigDir, 'big.lz4')]));
}
await rm(join(bigDir, 'big.lz4'), { force: true });
result.firstSnapshot = {
  dbMiB: Math.round(bigMiB),
  seconds: r2(best(snaps.map((s) => s.seconds))),
  snapshotMiB: snaps[0].snapshotMiB,
  peakRssMiB: Math.max(...snaps.map((s) => s.maxRssMiB)),
  lz4Cli1Seconds: r2(best(lz4)),
  ratioToLz4: r2(best(snaps.map((s) => s.seconds)) / best(lz4)),
};
const bigOut = join(bigDir, 'restored.db');
const bigRestores = [];
for (let i = 0; i < RUNS; i++) {
  log(`snapshot-only restore, run ${i + 1}/${RUNS}`);
  bigRestores.push(worker('restore', bigReplica, bigOut));
}
const bigFloor = await cpFloor(bigOut);
// Another floor: the lz4 CLI decompressing the same snapshot file to a file, then fsync (what a restore
// must do at least, without verifying WAL frames or going through a replica client).
const snapDir = join(bigReplica, 'generations', (await readdir(join(bigReplica, 'generations')))[0], 'snapshots');
const snapFile = join(snapDir, (await readdir(snapDir))[0]);
const lz4d = [];
for (let i = 0; i < RUNS; i++) {
  await rm(`${bigOut}.lz4d`, { force: true });
  lz4d.push(time('sh', ['-c', `lz4 -q -d -f "${snapFile}" "${bigOut}.lz4d" && sync "${bigOut}.lz4d"`]));
}
await rm(`${bigOut}.lz4d`, { force: true });
result.restoreSnapshotOnly = {
  dbMiB: Math.round(bigMiB),
  seconds: r2(best(bigRestores.map((r) => r.seconds))),
  peakRssMiB: Math.max(...bigRestores.map((r) => r.maxRssMiB)),
  ...bigFloor,
  ratioToCp: r2(best(bigRestores.map((r) => r.seconds)) / bigFloor.cpSeconds),
  ratioToCpFsync: r2(best(bigRestores.map((r) => r.seconds)) / bigFloor.cpFsyncSeconds),
  lz4DecompressFsyncSeconds: r2(best(lz4d)),
  ratioToLz4DecompressFsync: r2(best(bigRestores.map((r) => r.seconds)) / best(lz4d)),
};
await rm(bigOut, { force: true });
await rm(join(bigDir, '.big.db-litestream'), { recursive: true, force: true });
result.note = 'ratios = our time / floor time (lower is better); restore includes fsync of the result, cp does not (cpFsync does)';
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
