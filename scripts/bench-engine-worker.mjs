// One engine benchmark scenario in its own process (so its peak RSS and CPU are its own). Prints JSON.
// A replica is a directory or s3://bucket/prefix (on $LSTREAM_BENCH_S3_ENDPOINT).
//   lag <syncIntervalMs> <seconds> [replica]      replication lag of commits every 50 ms, and the floor
//   eld                                           event-loop delay while a 40 MB WAL is copied and checkpointed
//   replicate-wal <mib> <dir> <minCheckpointPages> <churn|grow> [replica]  replicate an app until <mib> of WAL has shipped
//   restore <replica> <out>                       restore a replica to <out>
//   first-snapshot <db> <replicaDir>              time from open() to the first snapshot of an existing database
import { spawn } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { mkdtemp, open, rename, rm, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { FileReplicaClient } from '@ls/client-file';
import { Db, comparePos, restore } from '@ls/core';

const MiB = 1024 * 1024;
const writerScript = fileURLToPath(new URL('./bench-writer.mjs', import.meta.url));
const now = () => performance.timeOrigin + performance.now();
const pct = (xs, p) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const r1 = (x) => Math.round(x * 10) / 10;
const [scenario, ...args] = process.argv.slice(2);

/**
 * The replica client for `where`: a directory, or `s3://bucket/prefix` on the S3 endpoint in
 * LSTREAM_BENCH_S3_ENDPOINT (s3rver, which takes any secret for key S3RVER).
 */
async function clientFor(where) {
  const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(where);
  if (!m) return new FileReplicaClient({ root: where });
  // Loaded only for S3, as the lstream CLI does: a file replica's process never loads the AWS SDK.
  const { createS3ReplicaClient } = await import('@ls/client-s3');
  return createS3ReplicaClient({
    bucket: m[1],
    path: m[2],
    endpoint: process.env.LSTREAM_BENCH_S3_ENDPOINT,
    forcePathStyle: true,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
  });
}
const cpu0 = process.cpuUsage();
let out = {};

function runWriter(args, onLine) {
  const child = spawn(process.execPath, [writerScript, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  child.stdout.setEncoding('utf8').on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine?.(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
  return { child, done: new Promise((res, rej) => child.on('exit', (c) => (c === 0 ? res() : rej(new Error(`writer exited ${c}`))))) };
}

/**
 * The floor of one durable upload to a file replica: write a 4 KiB file, fsync, rename, fsync the
 * directory; paced like the writer (every `everyMs`) for `seconds`, because this disk stalls now and
 * then (journal commits) and a short burst would miss that.
 */
async function durableWriteFloor(dir, seconds, everyMs) {
  const times = [];
  const buf = Buffer.alloc(4096, 7);
  const end = now() + seconds * 1000;
  for (let i = 0; now() < end; i++) {
    const t = now();
    const fh = await open(join(dir, 'f.tmp'), 'w');
    await fh.write(buf);
    await fh.sync();
    await fh.close();
    await rename(join(dir, 'f.tmp'), join(dir, `f${i}`));
    const d = await open(dir, 'r');
    await d.sync();
    await d.close();
    times.push(now() - t);
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return { samples: times.length, p50Ms: r1(pct(times, 50)), p99Ms: r1(pct(times, 99)), maxMs: r1(Math.max(...times)) };
}

switch (scenario) {
  case 'lag': {
    const [interval, seconds] = args.map(Number);
    const replicaAt = args[2];
    const dir = await mkdtemp(join(tmpdir(), 'lstream-bench-lag-'));
    const path = join(dir, 'app.db');
    const setup = new Database(path);
    setup.pragma('journal_mode = wal');
    setup.exec('CREATE TABLE lag(id INTEGER PRIMARY KEY, at REAL, pad TEXT)');
    setup.close();
    const db = new Db(path);
    db.addReplica(await clientFor(replicaAt ?? join(dir, 'replica')), { syncIntervalMs: interval });
    const replicaSyncs = [];
    db.events.on('replica-sync', (e) => replicaSyncs.push({ at: now(), pos: e.pos, ms: e.durationMs }));
    await db.open();
    await db.flush();
    const commits = [];
    const w = runWriter(['lag', path, '50', String(seconds)], (l) => {
      const [id, at, end, salt] = l.split(' ');
      commits.push({ id: Number(id), at: Number(at), end: Number(end), salt });
    });
    await w.done;
    await db.flush();
    // A commit is durable once a replica-sync reaches its end offset in the shadow index whose
    // header carries its WAL's salts.
    const saltOf = new Map();
    const indexSalt = (pos) => {
      const key = `${pos.generation}/${pos.index}`;
      if (!saltOf.has(key)) {
        const fd = openSync(db.shadowWalPath(pos.generation, pos.index), 'r');
        const b = Buffer.alloc(8);
        readSync(fd, b, 0, 8, 16);
        closeSync(fd);
        saltOf.set(key, b.toString('hex'));
      }
      return saltOf.get(key);
    };
    const lags = [];
    for (const c of commits) {
      const r = replicaSyncs.find((x) => x.at >= c.at && indexSalt(x.pos) === c.salt && x.pos.offset >= c.end);
      if (r) lags.push(r.at - c.at);
    }
    await db.close();
    out = {
      syncIntervalMs: interval,
      commits: commits.length,
      samples: lags.length,
      p50Ms: r1(pct(lags, 50)),
      p99Ms: r1(pct(lags, 99)),
      maxMs: r1(Math.max(...lags)),
      worstMs: [...lags].sort((x, y) => y - x).slice(0, 5).map(r1),
      floorDurableFileWrite: await durableWriteFloor(dir, seconds, 50),
    };
    await rm(dir, { recursive: true, force: true });
    break;
  }
  case 'eld': {
    const dir = await mkdtemp(join(tmpdir(), 'lstream-bench-eld-'));
    const path = join(dir, 'app.db');
    const setup = new Database(path);
    setup.pragma('journal_mode = wal');
    setup.exec('CREATE TABLE bulk(id INTEGER PRIMARY KEY, body TEXT)');
    setup.close();
    const db = new Db(path);
    db.addReplica(new FileReplicaClient({ root: join(dir, 'replica') }), { syncIntervalMs: 1000 });
    let checkpoint;
    let walBytes = 0;
    db.events.on('checkpoint', (e) => (checkpoint ??= e));
    db.events.on('db-sync', (e) => (walBytes = Math.max(walBytes, e.walBytes)));
    await db.open();
    await db.flush();
    checkpoint = undefined;
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    // Timers keep firing so every stall of the loop is measured.
    const tick = setInterval(() => undefined, 1);
    await runWriter(['bulk', path, String(40 * 1000 * 1000)]).done;
    const t0 = now();
    while (!checkpoint && now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 5));
    await db.flush();
    await new Promise((r) => setTimeout(r, 200));
    h.disable();
    clearInterval(tick);
    await db.close();
    out = {
      walMiB: r1(walBytes / MiB),
      checkpoint: checkpoint && { mode: checkpoint.mode, ms: r1(checkpoint.durationMs) },
      eventLoopDelay: { p50Ms: r1(h.percentile(50) / 1e6), p99Ms: r1(h.percentile(99) / 1e6), maxMs: r1(h.max / 1e6) },
    };
    await rm(dir, { recursive: true, force: true });
    break;
  }
  case 'replicate-wal': {
    const [mibS, dir, minPages, mode = 'grow', replicaAt] = args;
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    const path = join(dir, 'app.db');
    const setup = new Database(path);
    setup.pragma('journal_mode = wal');
    setup.exec('CREATE TABLE churn(id INTEGER PRIMARY KEY, body TEXT, v INTEGER)');
    const ins = setup.prepare('INSERT INTO churn(body, v) VALUES (?, 0)');
    setup.transaction(() => {
      for (let i = 0; i < 40_000; i++) ins.run(`${i}-${'x'.repeat(180 + (i % 40))}`);
    })();
    setup.pragma('wal_checkpoint(TRUNCATE)');
    setup.close();
    const db = new Db(path, { minCheckpointPageCount: Number(minPages) });
    db.addReplica(await clientFor(replicaAt ?? join(dir, 'replica')), { syncIntervalMs: 1000 });
    let shipped = 0;
    db.events.on('db-sync', (e) => (shipped += e.bytes));
    const c0 = process.cpuUsage();
    const t0 = now();
    await db.open();
    const w = runWriter([mode, path]);
    while (shipped < Number(mibS) * MiB) await new Promise((r) => setTimeout(r, 50));
    w.child.kill('SIGTERM');
    await w.done;
    await db.flush();
    const pos = db.pos;
    await db.close();
    const c = process.cpuUsage(c0);
    const cpuSeconds = (c.user + c.system) / 1e6;
    out = {
      walMiB: r1(shipped / MiB),
      indexes: pos.index + 1,
      dbMiB: r1((await stat(path)).size / MiB),
      seconds: r1((now() - t0) / 1000),
      cpuSeconds: r1(cpuSeconds),
      cpuSecondsPer100MiB: Math.round((cpuSeconds / (shipped / MiB)) * 100 * 100) / 100,
    };
    break;
  }
  case 'restore': {
    const [replicaDir, output] = args;
    for (const f of [output, `${output}-wal`, `${output}-shm`]) await rm(f, { force: true });
    const t0 = now();
    const client = await clientFor(replicaDir);
    const r = await restore(client, { outputPath: output });
    await client.close?.();
    out = { seconds: (now() - t0) / 1000, dbBytes: r.dbBytes, segments: r.plan.segments.length, position: r.pos.toString() };
    break;
  }
  case 'first-snapshot': {
    const [path, replicaDir] = args;
    await rm(replicaDir, { recursive: true, force: true });
    await rm(join(path, '..', `.${path.split('/').at(-1)}-litestream`), { recursive: true, force: true });
    const db = new Db(path);
    db.addReplica(new FileReplicaClient({ root: replicaDir }), { syncIntervalMs: 1000 });
    const t0 = now();
    const snap = new Promise((r) => db.events.on('snapshot', (e) => r(e)));
    await db.open();
    const e = await snap;
    const seconds = (now() - t0) / 1000;
    await db.close();
    out = { seconds, snapshotMiB: r1(e.bytes / MiB) };
    break;
  }
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
const c = process.cpuUsage(cpu0);
// Exit once printed: idle keep-alive connections of a storage client must not hold the process.
process.stdout.write(JSON.stringify({ scenario, ...out, processCpuSeconds: r1((c.user + c.system) / 1e6), maxRssMiB: r1(process.resourceUsage().maxRSS / 1024) }), () =>
  process.exit(0),
);

