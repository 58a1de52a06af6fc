// The engine as a library: an app opens replication in a few lines, awaits durability, and the
// engine keeps going through storage outages, retention and validation. The writer is a separate
// process; storage is a real directory.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { FileReplicaClient } from '@ls/client-file';
import Database from 'better-sqlite3';
import {
  AccessDeniedError,
  Db,
  DbError,
  InvalidArgumentError,
  LockedError,
  ReplicaError,
  collect,
  comparePos,
  listGenerations,
  listSnapshots,
  listWalSegments,
  restore,
  walSegmentKey,
  type Logger,
} from '@ls/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dump, sleep, startWriter, tempDir, write } from './helpers.js';

let dir: string;
let cleanup: () => void;
beforeAll(() => ({ dir, cleanup } = tempDir('lstream-engine-')));
afterAll(() => cleanup());

function collectingLogger() {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const logger: Logger = {
    debug: (msg, fields) => lines.push({ level: 'debug', msg, fields }),
    info: (msg, fields) => lines.push({ level: 'info', msg, fields }),
    warn: (msg, fields) => lines.push({ level: 'warn', msg, fields }),
    error: (msg, fields) => lines.push({ level: 'error', msg, fields }),
  };
  return { lines, logger };
}

/** `client`, with every put waiting first for what `before` returns: storage made slow, or silent, on demand. */
function beforeEachPut(client: FileReplicaClient, before: () => Promise<unknown> | undefined): FileReplicaClient {
  return new Proxy(client, {
    get(target, key) {
      const v = Reflect.get(target, key, target) as unknown;
      if (key === 'put') {
        return async (...args: unknown[]) => {
          await before();
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function restoreRows(root: string, name: string) {
  const out = join(dir, `restored-${name}.db`);
  await restore(new FileReplicaClient({ root }), { outputPath: out, integrityCheck: true });
  return dump(out);
}

/** Restores the replica at `root` and expects the database at `path`, row for row, and an intact file. */
async function expectRestoresTo(root: string, name: string, path: string) {
  const restored = await restoreRows(root, name);
  expect(restored.integrity).toBe('ok');
  expect(restored.rows).toEqual(dump(path).rows);
}

/** Cuts 10 bytes off the last WAL segment of generation `gen` in the file replica at `root`; returns its key. */
async function damageLastSegment(root: string, gen: string): Promise<string> {
  const last = (await collect(listWalSegments(new FileReplicaClient({ root }), gen))).at(-1)!;
  const key = walSegmentKey(gen, last.index, last.offset);
  const file = join(root, key);
  writeFileSync(file, readFileSync(file).subarray(0, statSync(file).size - 10));
  return key;
}

describe('Db as a library', () => {
  it('makes every transaction committed before flush() durable, and close() does a final sync', async () => {
    const path = join(dir, 'flush.db');
    const root = join(dir, 'flush-replica');
    write(path, ['--rows', '5']);
    const db = new Db(path, { minCheckpointPageCount: 30 });
    // A sync interval far longer than the test: flush must not wait for it.
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 600_000 });
    const synced: string[] = [];
    db.events.on('replica-sync', (e) => synced.push(e.pos.toString()));
    await db.open();
    write(path, ['--rows', '400', '--batch', '4', '--size', '500']);
    // Nor may it return before the upload: the replica must already hold every row.
    const pos = await db.flush();
    expect(pos).toBeDefined();
    const mid = await restoreRows(root, 'flush-mid');
    expect(mid.integrity).toBe('ok');
    expect(mid.rows).toEqual(dump(path).rows);
    write(path, ['--rows', '50']);
    await db.close();
    expect((await restoreRows(root, 'flush-end')).rows).toEqual(dump(path).rows);
    expect(synced.length).toBeGreaterThan(0);
  });

  it('uploads at most once per sync interval under a steady writer (commits during an upload wait for the next)', async () => {
    const path = join(dir, 'throttle.db');
    const root = join(dir, 'throttle-replica');
    write(path, ['--rows', '10']);
    // No checkpoint while it runs: each upload is one segment.
    const db = new Db(path, { minCheckpointPageCount: 1_000_000, checkpointIntervalMs: 3_600_000 });
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 1000 });
    await db.open();
    await db.flush();
    const uploads: number[] = [];
    db.events.on('replica-sync', () => uploads.push(performance.now()));
    const writer = startWriter(path, ['--rows', '1200', '--interval-ms', '5']);
    await writer.exited;
    const seconds = (uploads.at(-1)! - uploads[0]!) / 1000;
    await db.close();
    expect(seconds).toBeGreaterThan(2);
    // One upload per interval, each started up to a little early (by recent upload times); before,
    // every throttled upload was followed within milliseconds by one to three more.
    expect(uploads.length).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
    const gaps = uploads.slice(1).map((t, i) => t - uploads[i]!);
    // (Early by at most half an interval; the chased uploads came within milliseconds.)
    expect(Math.min(...gaps)).toBeGreaterThan(250);
    expect((await restoreRows(root, 'throttle')).rows).toEqual(dump(path).rows);
  });

  it('flush() does not wait a sync interval when an upload is already running', async () => {
    // Regression of the strict throttle: a running sync stopped where the database was when it
    // began, and the commits a flush waited for went to the next sync, 20 s later.
    const path = join(dir, 'flushrun.db');
    write(path, ['--rows', '5']);
    const inner = new FileReplicaClient({ root: join(dir, 'flushrun-replica') });
    let slow = false;
    const client = beforeEachPut(inner, () => (slow ? sleep(500) : undefined));
    const db = new Db(path, { minCheckpointPageCount: 1_000_000 });
    db.addReplica(client, { syncIntervalMs: 20_000 });
    await db.open();
    await db.flush();
    slow = true;
    write(path, ['--rows', '5']);
    const first = db.flush(); // starts a slow upload
    await sleep(100);
    write(path, ['--rows', '5']); // commits after that upload began
    const t0 = performance.now();
    await db.flush();
    const took = performance.now() - t0;
    await first;
    await db.close();
    expect(took).toBeLessThan(5_000);
  });

  it('removes shadow WAL files once shipped, so local disk does not grow', async () => {
    const path = join(dir, 'shadow.db');
    const root = join(dir, 'shadow-replica');
    write(path, ['--rows', '1']);
    const db = new Db(path, { minCheckpointPageCount: 20 });
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    let checkpoints = 0;
    db.events.on('checkpoint', () => checkpoints++);
    await db.open();
    // Commits spread over time, so lstream copies and checkpoints many times along the way.
    await startWriter(path, ['--rows', '2000', '--batch', '10', '--size', '400', '--interval-ms', '3']).exited;
    await db.flush();
    const pos = db.pos!;
    const shadowDir = join(db.metaPath, 'generations', pos.generation, 'wal');
    expect(checkpoints).toBeGreaterThan(3);
    expect(pos.index).toBeGreaterThan(3);
    expect(readdirSync(shadowDir).filter((n) => n.endsWith('.wal')).length).toBeLessThanOrEqual(2);
    await db.close();
  });

  it('keeps replicating through a storage outage and resumes from what storage holds', async () => {
    const path = join(dir, 'outage.db');
    const root = join(dir, 'outage-replica');
    write(path, ['--rows', '10']);
    const { lines, logger } = collectingLogger();
    const db = new Db(path, { logger });
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0, failureLogIntervalMs: 300 });
    const errors: unknown[] = [];
    db.events.on('replica-error', (e) => errors.push(e.error));
    await db.open();
    await db.flush();
    // Storage goes away: the replica directory is moved aside and a file put in its place.
    renameSync(root, `${root}.away`);
    writeFileSync(root, 'not a directory');
    const writer = startWriter(path, ['--rows', '300', '--batch', '3', '--interval-ms', '5']);
    await writer.exited;
    await sleep(1500);
    expect(errors.length).toBeGreaterThan(2);
    // One warning when the episode starts, not one per attempt; then a reminder at most every
    // failureLogIntervalMs while it lasts, counting the attempts.
    expect(lines.filter((l) => l.msg.startsWith('replica sync failed')).length).toBe(1);
    const reminders = lines.filter((l) => l.msg === 'replica sync still failing; retrying');
    expect(reminders.length).toBeGreaterThan(0);
    expect(reminders.length).toBeLessThan(errors.length - 1);
    expect(reminders.every((l) => (l.fields?.failedAttempts as number) > 1 && typeof l.fields?.failingSince === 'string')).toBe(true);
    rmSync(root, { force: true });
    renameSync(`${root}.away`, root);
    await db.flush();
    await db.close();
    expect(lines.some((l) => l.msg === 'replica recovered')).toBe(true);
    expect((await restoreRows(root, 'outage')).rows).toEqual(dump(path).rows);
  });

  it('continues the generation after a close whose final sync failed on one replica, which then catches up', async () => {
    const path = join(dir, 'failclose.db');
    const good = join(dir, 'failclose-good');
    const bad = join(dir, 'failclose-bad');
    write(path, ['--rows', '10']);
    const open = () => {
      const db = new Db(path);
      db.addReplica(new FileReplicaClient({ root: good }), { name: 'good', syncIntervalMs: 0 });
      db.addReplica(new FileReplicaClient({ root: bad }), { name: 'bad', syncIntervalMs: 0 });
      return db;
    };
    let db = open();
    await db.open();
    await db.flush();
    const generation = db.pos!.generation;
    // The second replica's storage goes away, then the database closes with commits it never got.
    renameSync(bad, `${bad}.away`);
    writeFileSync(bad, 'not a directory');
    write(path, ['--rows', '100']);
    await expect(db.close({ signal: AbortSignal.timeout(1500) })).rejects.toBeDefined();
    rmSync(bad, { force: true });
    renameSync(`${bad}.away`, bad);
    // Nothing touched the database meanwhile: the next start goes on in the same generation.
    db = open();
    const generations: string[] = [];
    db.events.on('generation', (e) => generations.push(e.generation));
    await db.open();
    await db.flush();
    expect(generations).toEqual([]);
    expect(db.pos!.generation).toBe(generation);
    await db.close();
    for (const root of [good, bad]) expect((await restoreRows(root, `failclose-${root === good ? 'good' : 'bad'}`)).rows).toEqual(dump(path).rows);
  });

  it('reports a sync that hangs (storage not answering) while it hangs, not only once the SDK gives up', async () => {
    const path = join(dir, 'hang.db');
    const root = join(dir, 'hang-replica');
    write(path, ['--rows', '10']);
    const inner = new FileReplicaClient({ root });
    let gate: Promise<void> | undefined;
    let open!: () => void;
    // Storage whose writes stop answering until the gate opens.
    const client = beforeEachPut(inner, () => gate);
    const { lines, logger } = collectingLogger();
    const db = new Db(path, { logger });
    db.addReplica(client, { syncIntervalMs: 0, slowSyncMs: 300 });
    await db.open();
    await db.flush();
    gate = new Promise<void>((r) => (open = r));
    write(path, ['--rows', '20']);
    await sleep(1000);
    const during = (await db.status()).replicas[0]!;
    expect(String(during.lastError)).toContain('a sync has been running for more than');
    expect(lines.filter((l) => l.msg.startsWith('replica sync still running'))).toHaveLength(1);
    open();
    gate = undefined;
    await db.flush();
    expect((await db.status()).replicas[0]!.lastError).toBeUndefined();
    // flush() resolves once the data is stored; the sync logs its end after its shadow clean-up.
    for (const until = Date.now() + 5000; !lines.some((l) => l.msg === 'replica sync ended') && Date.now() < until; ) await sleep(10);
    expect(lines.some((l) => l.msg === 'replica sync ended')).toBe(true);
    await db.close();
    expect((await restoreRows(root, 'hang')).rows).toEqual(dump(path).rows);
  });

  it('takes a new snapshot when the last WAL segment in storage is damaged, instead of stopping for good', async () => {
    const path = join(dir, 'damaged.db');
    const root = join(dir, 'damaged-replica');
    write(path, ['--rows', '20']);
    const first = new Db(path);
    first.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    await first.open();
    write(path, ['--rows', '30']);
    await first.flush();
    await first.close();
    const gen = first.pos!.generation;
    const damaged = await damageLastSegment(root, gen);

    const { lines, logger } = collectingLogger();
    const db = new Db(path, { logger });
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    await db.open();
    write(path, ['--rows', '25']);
    await db.flush();
    await db.close();
    const warning = lines.find((l) => l.msg === 'the last WAL segment in storage is damaged; taking a new snapshot');
    expect(warning?.fields?.object).toBe(damaged);
    await expectRestoresTo(root, 'damaged', path);
  });

  it('keeps the latest state restorable when that new snapshot lands in the damaged segment\'s own WAL index (an app reader held the WAL)', async () => {
    const path = join(dir, 'damaged-same.db');
    const root = join(dir, 'damaged-same-replica');
    write(path, ['--rows', '20']);
    let failNext = false;
    // One failed upload makes the replica look up its position in storage again.
    const client = beforeEachPut(new FileReplicaClient({ root }), () => {
      if (!failNext) return undefined;
      failNext = false;
      return Promise.reject(Object.assign(new Error('connection reset'), { code: 'ECONNRESET', retryable: true }));
    });
    const db = new Db(path);
    db.addReplica(client, { syncIntervalMs: 0 });
    await db.open();
    for (let i = 0; i < 2; i++) {
      write(path, ['--rows', '30']);
      await db.flush();
    }
    const gen = db.pos!.generation;
    // The app's reader keeps the snapshot's checkpoint from starting a new WAL index.
    const reader = new Database(path);
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM t').get();
    try {
      await damageLastSegment(root, gen);
      failNext = true;
      write(path, ['--rows', '5']);
      await db.flush();
    } finally {
      reader.exec('COMMIT');
      reader.close();
    }
    await db.close();
    await expectRestoresTo(root, 'damaged-same', path);
  });

  it('re-snapshots a replica whose unshipped shadow WAL went past the cap', async () => {
    const path = join(dir, 'cap.db');
    const root = join(dir, 'cap-replica');
    write(path, ['--rows', '10']);
    const { lines, logger } = collectingLogger();
    const db = new Db(path, { logger, minCheckpointPageCount: 20, maxShadowWalBytes: 200_000 });
    const replica = db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    const dropped: number[] = [];
    db.events.on('shadow-dropped', (e) => dropped.push(e.index));
    await db.open();
    await db.flush();
    const snapshotsBefore = (await collect(listSnapshots(replica.client, db.pos!.generation))).length;
    renameSync(root, `${root}.away`);
    writeFileSync(root, 'outage');
    write(path, ['--rows', '3000', '--batch', '10', '--size', '400']);
    await db.sync();
    await sleep(300);
    expect(lines.some((l) => l.msg.startsWith('shadow WAL exceeds its cap'))).toBe(true);
    expect(dropped.length).toBeGreaterThan(0);
    rmSync(root, { force: true });
    renameSync(`${root}.away`, root);
    await db.flush();
    await db.close();
    const gen = (await listGenerations(replica.client)).at(-1)!;
    expect((await collect(listSnapshots(replica.client, gen))).length).toBeGreaterThan(snapshotsBefore);
    expect((await restoreRows(root, 'cap')).rows).toEqual(dump(path).rows);
  });

  it('drops nothing and warns of nothing at a first start on a WAL larger than the cap', async () => {
    const path = join(dir, 'cap-start.db');
    const root = join(dir, 'cap-start-replica');
    write(path, ['--rows', '10']);
    // A connection held open keeps the writer's WAL: its close is not the last one.
    const hold = new Database(path);
    hold.prepare('SELECT count(*) FROM t').get();
    write(path, ['--rows', '3000', '--batch', '10', '--size', '400', '--autocheckpoint', '0']);
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(400_000);
    const { lines, logger } = collectingLogger();
    const db = new Db(path, { logger, maxShadowWalBytes: 200_000 });
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    const dropped: number[] = [];
    db.events.on('shadow-dropped', (e) => dropped.push(e.index));
    try {
      await db.open();
      await db.flush();
      write(path, ['--rows', '5']);
      await db.flush();
      await db.close();
    } finally {
      hold.close();
    }
    // The new generation starts with a snapshot: no replica needed the files before it.
    expect(dropped).toEqual([]);
    expect(lines.filter((l) => l.msg.startsWith('shadow WAL exceeds its cap'))).toEqual([]);
    expect((await restoreRows(root, 'cap-start')).rows).toEqual(dump(path).rows);
  });

  it('enforces retention without ever deleting the newest restorable chain, and validates', async () => {
    const path = join(dir, 'retention.db');
    const root = join(dir, 'retention-replica');
    write(path, ['--rows', '10']);
    const db = new Db(path, { minCheckpointPageCount: 20 });
    const replica = db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0, retentionMs: 60_000 });
    // A second replica whose retention period is over at once.
    const shortRoot = join(dir, 'retention-short');
    const short = db.addReplica(new FileReplicaClient({ root: shortRoot }), { name: 'short', syncIntervalMs: 0, retentionMs: 1 });
    await db.open();
    for (let i = 0; i < 3; i++) {
      write(path, ['--rows', '300', '--batch', '10', '--size', '300']);
      await db.flush();
      await replica.snapshot();
      await short.snapshot();
    }
    const gen = db.pos!.generation;
    const snaps = await collect(listSnapshots(replica.client, gen));
    expect(snaps.length).toBeGreaterThanOrEqual(3);
    // Everything is younger than the retention period: nothing goes.
    await replica.enforceRetention();
    expect(await collect(listSnapshots(replica.client, gen))).toHaveLength(snaps.length);
    const old = new Db(path); // a second Db may not open the same database
    await expect(old.open()).rejects.toMatchObject({ code: 'ELOCKED' });
    // Everything is older: only the newest snapshot and what follows it stay.
    await sleep(10);
    await short.enforceRetention();
    const left = await collect(listSnapshots(short.client, gen));
    expect(left.length).toBeGreaterThanOrEqual(1);
    const minIndex = Math.min(...left.map((s) => s.index));
    const segs = await collect(listWalSegments(short.client, gen));
    expect(segs.every((s) => s.index >= minIndex)).toBe(true);
    expect(await replica.validate()).toBe(true);
    expect(await short.validate()).toBe(true);
    write(path, ['--rows', '20']);
    await db.close();
    expect((await restoreRows(root, 'retention')).rows).toEqual(dump(path).rows);
    expect((await restoreRows(shortRoot, 'retention-short')).rows).toEqual(dump(path).rows);
    expect(existsSync(join(root, 'generations', gen))).toBe(true);
  });
});

describe('retention without a database', () => {
  it('deletes nothing while the database is missing (regression: it would see every backup as old)', async () => {
    const path = join(dir, 'gone.db');
    const root = join(dir, 'gone-replica');
    write(path, ['--rows', '20']);
    const db = new Db(path);
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    await db.open();
    await db.flush();
    await db.close();
    const client = new FileReplicaClient({ root });
    const gens = await listGenerations(client);
    expect(gens).toHaveLength(1);
    // The database is lost; lstream starts again before anyone restores.
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    const again = new Db(path);
    const replica = again.addReplica(client, { retentionMs: 1 });
    await again.open();
    await sleep(5);
    await replica.enforceRetention();
    await again.close();
    expect(await listGenerations(client)).toEqual(gens);
    expect((await restoreRows(root, 'gone')).rows).toHaveLength(20);
  });
});

describe('Db lifecycle', () => {
  it('waits for a database that does not exist yet, then replicates it from its first commit', async () => {
    const path = join(dir, 'later.db');
    const root = join(dir, 'later-replica');
    const db = new Db(path);
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    await db.open();
    expect(db.pos).toBeUndefined();
    expect(await db.flush()).toBeUndefined();
    write(path, ['--rows', '120', '--batch', '3']);
    await db.flush();
    await db.close();
    expect((await restoreRows(root, 'later')).rows).toEqual(dump(path).rows);
  });

  it("keeps SQLite's locks while it reads the database (snapshot, validation): an app closing its connection leaves the WAL and every commit in place", async () => {
    // Regression: a snapshot read the file through a descriptor of its own and closed it, which
    // released every POSIX lock the process held on the database, SQLite's SHARED lock included.
    // The next app process to close its connection then took itself for the last one, checkpointed
    // what it could and deleted the WAL under lstream's read transaction: commits lost, and the
    // database corrupt once the WAL was large.
    const path = join(dir, 'locks.db');
    const root = join(dir, 'locks-replica');
    write(path, ['--rows', '300', '--size', '2000']);
    const { lines, logger } = collectingLogger();
    const db = new Db(path, { logger });
    const replica = db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    await db.open();
    await db.flush();
    const generation = db.pos!.generation;
    // The POSIX locks this process holds on the database file (Linux lists them in /proc/locks).
    const ino = statSync(path).ino;
    const ourLocks = () => readFileSync('/proc/locks', 'utf8').split('\n').filter((l) => l.includes(` ${process.pid} `) && l.includes(`:${ino} `));
    expect(ourLocks().length).toBeGreaterThan(0);
    for (const read of [() => replica.snapshot(), () => replica.validate()]) {
      await read();
      expect(ourLocks().length).toBeGreaterThan(0);
      // The sqlite3 CLI opens the database, commits and closes its connection: were it the last
      // connection, it would checkpoint and delete the WAL.
      const r = spawnSync('sqlite3', [path, "INSERT INTO t (body, n) SELECT 'cli-' || id, id FROM t ORDER BY id LIMIT 40;"], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(existsSync(`${path}-wal`)).toBe(true);
      await db.flush();
    }
    expect(db.pos!.generation).toBe(generation);
    expect(lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    await db.close();
    const source = dump(path);
    expect(source.integrity).toBe('ok');
    expect(source.rows.length).toBe(380);
    expect((await restoreRows(root, 'locks')).rows).toEqual(source.rows);
  });

  it('refuses calls out of order with typed errors, lets a failed open be tried again, and makes a second close wait for the first', async () => {
    const path = join(dir, 'order.db');
    const root = join(dir, 'order-replica');
    write(path, ['--rows', '5']);
    const db = new Db(path);
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 100 });
    // Not open: sync and flush would have worked on the shadow WAL without holding the lock.
    await expect(db.sync()).rejects.toBeInstanceOf(DbError);
    await expect(db.flush()).rejects.toBeInstanceOf(DbError);
    expect(existsSync(db.metaPath)).toBe(false);

    // Another Db holds the database: open fails, and so do sync and flush after it.
    const holder = new Db(path);
    holder.addReplica(new FileReplicaClient({ root: join(dir, 'order-other') }));
    await holder.open();
    await expect(db.open()).rejects.toBeInstanceOf(LockedError);
    await expect(db.flush()).rejects.toBeInstanceOf(DbError);
    await holder.close();
    // Tried again once the cause is gone, it opens and replicates.
    await db.open();
    expect(() => db.addReplica(new FileReplicaClient({ root: join(dir, 'order-late') }), { name: 'late' })).toThrow(InvalidArgumentError);
    await expect(db.open()).rejects.toBeInstanceOf(InvalidArgumentError);
    write(path, ['--rows', '20']);
    await db.flush();
    write(path, ['--rows', '7']);
    const first = db.close();
    await db.close();
    // Both calls end together: the final sync is made and the lock is free.
    const again = new Db(path);
    again.addReplica(new FileReplicaClient({ root: join(dir, 'order-again') }));
    await again.open();
    await again.close();
    await first;
    expect((await restoreRows(root, 'order')).rows).toEqual(dump(path).rows);
  });

  it('rejects numbers that are not durations or counts, in options and restore targets', async () => {
    const path = join(dir, 'numbers.db');
    // A NaN or zero monitor interval made an idle Db spin on its timer.
    for (const bad of [0, -5, Number.NaN, Infinity]) {
      expect(() => new Db(path, { monitorIntervalMs: bad })).toThrow(InvalidArgumentError);
    }
    expect(() => new Db(path, { busyTimeoutMs: -1 })).toThrow(InvalidArgumentError);
    const db = new Db(path);
    expect(() => db.addReplica(new FileReplicaClient({ root: join(dir, 'numbers-replica') }), { syncIntervalMs: -1 })).toThrow(InvalidArgumentError);
    expect(() => db.addReplica(new FileReplicaClient({ root: join(dir, 'numbers-replica') }), { snapshotIntervalMs: Number.NaN })).toThrow(InvalidArgumentError);
    const client = new FileReplicaClient({ root: join(dir, 'numbers-replica') });
    const outputPath = join(dir, 'numbers-restored.db');
    const generation = '0123456789abcdef';
    await expect(restore(client, { outputPath, generation, index: -1 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(restore(client, { outputPath, generation, index: 1.5 })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(restore(client, { outputPath, timestamp: new Date('garbage') })).rejects.toBeInstanceOf(InvalidArgumentError);
    await expect(restore(client, { outputPath, parallelism: 0 })).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(existsSync(outputPath)).toBe(false);
  });

  it('says why it cannot open when lstream cannot make its directory', async () => {
    const path = join(dir, 'nometa.db');
    write(path, ['--rows', '1']);
    writeFileSync(join(dir, 'not-a-dir'), 'x');
    const db = new Db(path, { metaPath: join(dir, 'not-a-dir', 'meta') });
    const err = await db.open().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DbError);
    expect((err as Error).message).toContain(join(dir, 'not-a-dir', 'meta'));
    expect(((err as Error).cause as NodeJS.ErrnoException).code).toBe('ENOTDIR');
  });

  it('ends close() at its deadline even when a client ignores its abort signal', async () => {
    const path = join(dir, 'deaf.db');
    write(path, ['--rows', '5']);
    const db = new Db(path);
    let hang = false;
    // A client breaking the contract: once hung, its puts never settle, whatever the signal says.
    const deaf = beforeEachPut(new FileReplicaClient({ root: join(dir, 'deaf-replica') }), () => (hang ? new Promise(() => {}) : undefined));
    db.addReplica(deaf, { syncIntervalMs: 50 });
    await db.open();
    await db.flush();
    hang = true;
    write(path, ['--rows', '5']);
    await sleep(200);
    const err = await db.close({ signal: AbortSignal.timeout(500) }).catch((e: unknown) => e);
    expect((err as Error).name).toMatch(/AbortError|TimeoutError/);
  });

  it("rejects flush() when a replica's storage refuses the data, and close() names that refusal", async () => {
    const path = join(dir, 'refused.db');
    const root = join(dir, 'refused-replica');
    write(path, ['--rows', '5']);
    const db = new Db(path);
    const denied = beforeEachPut(new FileReplicaClient({ root }), () => Promise.reject(new AccessDeniedError('the bucket policy denies PutObject')));
    db.addReplica(denied, { syncIntervalMs: 100 });
    await db.open();
    write(path, ['--rows', '5']);
    await expect(db.flush()).rejects.toBeInstanceOf(AccessDeniedError);
    const err = await db.close().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReplicaError);
    expect((err as Error).cause).toBeInstanceOf(AccessDeniedError);
    expect((err as Error).message).toContain('the bucket policy denies PutObject');
  });

  it('stops replicating, without a final sync, when another lstream took its lock over while it was paused', async () => {
    const path = join(dir, 'taken.db');
    const root = join(dir, 'taken-replica');
    write(path, ['--rows', '5']);
    const db = new Db(path);
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 50 });
    await db.open();
    await db.flush();
    // What a second lstream on another host writes after this one missed its refreshes for 45 s.
    const lockPath = join(db.metaPath, 'lock');
    const other = JSON.stringify({ pid: 4242, host: 'another-host', startedAt: '2026-11-27T00:00:00Z', what: `database ${path}` });
    writeFileSync(lockPath, other);
    const lost = new Promise<unknown>((r) => db.events.on('db-sync-error', (e) => LockedError.isInstance(e.error) && r(e.error)));
    expect(LockedError.isInstance(await lost)).toBe(true); // at the next heartbeat, within 10 s
    const shadow = join(db.metaPath, 'generations', db.pos!.generation, 'wal');
    const before = readdirSync(shadow).map((f) => [f, statSync(join(shadow, f)).size]);
    write(path, ['--rows', '20']);
    await sleep(300);
    // The shadow WAL and the replica are the other process's now: nothing more is written.
    expect(readdirSync(shadow).map((f) => [f, statSync(join(shadow, f)).size])).toEqual(before);
    await expect(db.flush()).rejects.toBeInstanceOf(LockedError);
    // Its read transaction is gone too, or the new holder could never checkpoint.
    const app = new Database(path);
    try {
      expect(app.pragma('wal_checkpoint(TRUNCATE)')).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]);
    } finally {
      app.close();
    }
    await expect(db.close()).rejects.toBeInstanceOf(LockedError);
    expect(readFileSync(lockPath, 'utf8')).toBe(other);
  }, 30_000);

  it('never holds the write lock across a turn of the event loop: an app writing from the same thread is not failed by checkpoints', async () => {
    // The app's connection is synchronous (better-sqlite3): while it waits for the write lock it
    // blocks this thread. A checkpoint that needed this thread to release the lock kept the app
    // waiting its whole busy timeout, and failed the write with SQLITE_BUSY.
    const path = join(dir, 'in-process.db');
    const root = join(dir, 'in-process-replica');
    write(path, ['--rows', '5']);
    const db = new Db(path, { minCheckpointPageCount: 20, monitorIntervalMs: 20 });
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 50 });
    const checkpoints: string[] = [];
    db.events.on('checkpoint', (e) => {
      if (!e.error) checkpoints.push(e.mode);
    });
    await db.open();
    const app = new Database(path, { timeout: 2000 });
    const insert = app.prepare('INSERT INTO t (body, n) VALUES (?, ?)');
    const failures: string[] = [];
    let rows = 0;
    try {
      while (checkpoints.length < 8 && rows < 20_000 && failures.length === 0) {
        try {
          insert.run('x'.repeat(2000), rows);
          rows++;
        } catch (err) {
          failures.push((err as Error).message);
        }
        await sleep(1);
      }
    } finally {
      app.close();
    }
    await db.close();
    expect(failures).toEqual([]);
    expect(checkpoints.length).toBeGreaterThanOrEqual(8);
    await expectRestoresTo(root, 'in-process', path);
  }, 60_000);

  it('starts a new generation when its shadow directory is removed while it runs, and goes on replicating', async () => {
    // Regression: starting the generation first fsynced the lost shadow file, failed on it, and
    // failed again at every retry: replication stopped for good.
    const path = join(dir, 'noshadow.db');
    const root = join(dir, 'noshadow-replica');
    write(path, ['--rows', '20']);
    const { lines, logger } = collectingLogger();
    const db = new Db(path, { logger });
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    await db.open();
    write(path, ['--rows', '50']);
    await db.flush();
    const first = db.pos!.generation;
    rmSync(db.metaPath, { recursive: true, force: true });
    write(path, ['--rows', '50']);
    await db.flush();
    expect(db.pos!.generation).not.toBe(first);
    // Removed while a checkpoint restarts the WAL, the directory is made again for the next index,
    // and the break shows as the shadow not matching the WAL instead: a new generation either way.
    const reasons = lines.filter((l) => l.msg === 'new generation').map((l) => l.fields?.reason);
    expect(reasons.slice(1)).toEqual([expect.stringMatching(/^(shadow wal missing|wal overwritten by another process)$/)]);
    write(path, ['--rows', '30']);
    await db.close();
    await expectRestoresTo(root, 'noshadow', path);
  });

  it('replicates a database opened through a symbolic link, whose WAL SQLite keeps next to the real file', async () => {
    const realDir = join(dir, 'real-dir');
    mkdirSync(realDir);
    const real = join(realDir, 'target.db');
    const link = join(dir, 'link.db');
    write(real, ['--rows', '20']);
    symlinkSync(real, link);
    const db = new Db(link);
    db.addReplica(new FileReplicaClient({ root: join(dir, 'link-replica') }), { syncIntervalMs: 0 });
    await db.open();
    // The lock sits next to the real file: a second lstream through the other name is refused.
    const other = new Db(real);
    other.addReplica(new FileReplicaClient({ root: join(dir, 'link-replica-2') }), { syncIntervalMs: 0 });
    await expect(other.open()).rejects.toMatchObject({ code: 'ELOCKED' });
    write(link, ['--rows', '200', '--batch', '4']);
    expect(existsSync(`${real}-wal`)).toBe(true);
    await db.flush();
    await db.close();
    const restored = await restoreRows(join(dir, 'link-replica'), 'link');
    expect(restored.integrity).toBe('ok');
    expect(restored.rows).toEqual(dump(real).rows);
    expect(restored.rows).toHaveLength(220);

    // A link to a database that does not exist yet: the real file is found once it appears.
    const later = join(realDir, 'later.db');
    const laterLink = join(dir, 'later-link.db');
    symlinkSync(later, laterLink);
    const db2 = new Db(laterLink, { monitorIntervalMs: 100 });
    db2.addReplica(new FileReplicaClient({ root: join(dir, 'later-link-replica') }), { syncIntervalMs: 0 });
    await db2.open();
    write(laterLink, ['--rows', '30']);
    await sleep(300);
    // Replication has picked it up: the WAL of the next commits stays next to the real file.
    write(laterLink, ['--rows', '30']);
    expect(existsSync(`${later}-wal`)).toBe(true);
    await db2.flush(AbortSignal.timeout(10_000));
    await db2.close();
    expect((await restoreRows(join(dir, 'later-link-replica'), 'later-link')).rows).toEqual(dump(later).rows);
  });

  it('follows a database file that is removed, then replaced by another, without spinning', async () => {
    const path = join(dir, 'replaced.db');
    const root = join(dir, 'replaced-replica');
    write(path, ['--rows', '50']);
    const { lines, logger } = collectingLogger();
    const db = new Db(path, { monitorIntervalMs: 200, logger });
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    let failures = 0;
    db.events.on('db-sync-error', () => failures++);
    await db.open();
    await db.flush();
    const first = db.pos!.generation;

    // Removed: syncs wait for it (and never spin on the watcher's events for the files they touch).
    for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
    await sleep(1000);
    // At most one sync per monitor interval once one failed (it spun at hundreds per second).
    expect(failures).toBeLessThanOrEqual(8);
    expect(lines.some((l) => l.msg === 'database file was removed; waiting for it')).toBe(true);

    // Replaced by another database: replication follows it in a new generation.
    write(path, ['--rows', '80', '--size', '200']);
    await sleep(500);
    await db.flush();
    expect(db.pos!.generation).not.toBe(first);
    await db.close();
    await expectRestoresTo(root, 'replaced', path);
  });

  it('ships the commits made just before the database file was replaced to the generation it left, and the new database to its own', async () => {
    const path = join(dir, 'leftover.db');
    const root = join(dir, 'leftover-replica');
    write(path, ['--rows', '40']);
    const { lines, logger } = collectingLogger();
    const db = new Db(path, { monitorIntervalMs: 100, logger });
    // A long sync interval: the commits below reach the shadow WAL at once, but not storage.
    db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 60_000 });
    await db.open();
    await db.flush();
    const first = db.pos!;
    write(path, ['--rows', '25', '--batch', '5']);
    const deadline = Date.now() + 10_000;
    while (db.pos!.offset === first.offset && Date.now() < deadline) await sleep(20);
    const committed = dump(path).rows;
    const client = new FileReplicaClient({ root });
    // In the shadow WAL, not in storage yet: what the old generation would lose with it.
    expect(db.pos!.offset).not.toBe(first.offset);
    expect(comparePos(db.replicas[0]!.pos!, db.pos!)).toBeLessThan(0);

    // Another database, with another page size, moved into place (its WAL and index removed).
    const other = join(dir, 'leftover-other.db');
    const o = new Database(other);
    o.pragma('page_size = 8192');
    o.pragma('journal_mode = wal');
    o.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL, n INTEGER NOT NULL); INSERT INTO t (body, n) VALUES ('other', 1)");
    o.close();
    for (const f of ['-wal', '-shm']) rmSync(`${path}${f}`, { force: true });
    renameSync(other, path);
    write(path, ['--rows', '10']);
    while (db.pos!.generation === first.generation && Date.now() < deadline) await sleep(20);
    expect(db.pos!.generation).not.toBe(first.generation);
    await db.flush(AbortSignal.timeout(10_000));
    await db.close();

    // The generation left behind restores to every commit made before the file was replaced...
    const out = join(dir, 'restored-leftover-old.db');
    await restore(client, { outputPath: out, generation: first.generation, integrityCheck: true });
    const old = dump(out);
    expect(old.integrity).toBe('ok');
    expect(old.rows).toEqual(committed);
    expect(lines.some((l) => l.msg === 'shipping the rest of the generation the database left')).toBe(true);
    // ...and the latest state is the new database.
    await expectRestoresTo(root, 'leftover-new', path);
    // Nothing of the old generation is left on local disk once shipped.
    expect(readdirSync(join(dir, '.leftover.db-litestream', 'generations'))).toEqual([db.pos!.generation]);
  });

  it('says a new generation began because the page size changed while replication was stopped', async () => {
    const path = join(dir, 'pagesize.db');
    const root = join(dir, 'pagesize-replica');
    write(path, ['--rows', '20']);
    const open = async () => {
      const db = new Db(path, { monitorIntervalMs: 100 });
      const reasons: string[] = [];
      db.events.on('generation', (e) => reasons.push(e.reason));
      db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
      await db.open();
      await db.flush();
      return { db, reasons };
    };
    const a = await open();
    await a.db.close();
    const app = new Database(path);
    app.pragma('journal_mode = delete');
    app.pragma('page_size = 8192');
    app.exec('VACUUM');
    app.pragma('journal_mode = wal');
    app.close();
    const b = await open();
    expect(b.reasons).toEqual(["the database's page size changed from 4096 to 8192"]);
    expect(b.db.pos!.generation).not.toBe(a.db.pos!.generation);
    await b.db.close();
    await expectRestoresTo(root, 'pagesize', path);
  });

  it('warns when the app has loaded another copy of better-sqlite3, whose SQLite would not see lstream\'s locks', async () => {
    // A second copy of the package, as npm installs when an app pins another version.
    const require = createRequire(import.meta.url);
    const real = realpathSync(dirname(dirname(require.resolve('better-sqlite3'))));
    const copy = join(dir, 'app-modules', 'node_modules');
    mkdirSync(join(copy, 'better-sqlite3', 'build', 'Release'), { recursive: true });
    cpSync(join(real, 'package.json'), join(copy, 'better-sqlite3', 'package.json'));
    cpSync(join(real, 'lib'), join(copy, 'better-sqlite3', 'lib'), { recursive: true });
    cpSync(join(real, 'build', 'Release', 'better_sqlite3.node'), join(copy, 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node'));
    const bindings = realpathSync(join(real, '..', 'bindings'));
    cpSync(bindings, join(copy, 'bindings'), { recursive: true, dereference: true });
    cpSync(realpathSync(join(bindings, '..', 'file-uri-to-path')), join(copy, 'file-uri-to-path'), { recursive: true, dereference: true });
    const path = join(dir, 'two-copies.db');
    write(path, ['--rows', '5']);
    const open = async () => {
      const { lines, logger } = collectingLogger();
      const db = new Db(path, { logger });
      await db.open();
      await db.close();
      return lines.filter((l) => l.msg.startsWith('another copy of better-sqlite3 is loaded'));
    };
    // One copy: nothing to say.
    expect(await open()).toEqual([]);
    const AppDatabase = createRequire(join(copy, 'app.js'))('better-sqlite3') as typeof Database;
    const app = new AppDatabase(path);
    try {
      expect(app.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 5 });
      const warned = await open();
      expect(warned).toHaveLength(1);
      expect(warned[0]!.level).toBe('warn');
      expect(warned[0]!.fields).toMatchObject({ loaded: realpathSync(join(copy, 'better-sqlite3')), lstream: real });
    } finally {
      app.close();
    }
  });

  it('starts a new generation for a database file swapped in after a restart of replication', async () => {
    const path = join(dir, 'swap.db');
    const root = join(dir, 'swap-replica');
    write(path, ['--rows', '40']);
    // The app stays connected, idle, through the restart, as in a deploy of lstream alone.
    const app = startWriter(path, ['--rows', '100000', '--interval-ms', '5']);
    await app.waitFor(/^committed/);
    app.child.kill('SIGUSR1');
    await app.waitFor(/^paused/);
    const open = async () => {
      const db = new Db(path, { monitorIntervalMs: 200 });
      db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
      await db.open();
      await db.flush();
      return db;
    };
    // A clean stop and start: replication expects the WAL it left, and continues the generation.
    await (await open()).close();
    const db = await open();
    const gen = db.pos!.generation;
    await sleep(300);
    // The app stops (told to stop, then let go of its pause).
    app.child.kill('SIGTERM');
    app.child.kill('SIGUSR2');
    expect(await app.exited).toBe(0);
    // Another database is moved into place (its app stopped, the old WAL and index removed).
    const other = join(dir, 'swap-other.db');
    write(other, ['--rows', '70', '--size', '150']);
    for (const f of ['-wal', '-shm']) rmSync(`${path}${f}`, { force: true });
    renameSync(other, path);
    // Its app writes and stays connected (its WAL stays: one that looks like a restart of the old).
    const app2 = startWriter(path, ['--rows', '100000', '--interval-ms', '5']);
    await app2.waitFor(/^committed/);
    await sleep(400);
    app2.child.kill('SIGUSR1');
    await app2.waitFor(/^paused/);
    await db.flush();
    expect(db.pos!.generation).not.toBe(gen);
    const live = dump(path);
    const restored = await restoreRows(root, 'swap');
    app2.child.kill('SIGTERM');
    app2.child.kill('SIGUSR2');
    expect(await app2.exited).toBe(0);
    await db.close();
    expect(restored.integrity).toBe('ok');
    expect(restored.rows).toEqual(live.rows);
  });

  it('keeps the snapshot interval across restarts of replication', async () => {
    const path = join(dir, 'snaprestart.db');
    const root = join(dir, 'snaprestart-replica');
    write(path, ['--rows', '10']);
    // Restarted every ~0.5 s for ~3.5 s with a 1.2 s interval: snapshots are still taken (each
    // start counted the interval from zero again, so none was).
    const started = Date.now();
    while (Date.now() - started < 3500) {
      const db = new Db(path);
      db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0, snapshotIntervalMs: 1200 });
      await db.open();
      write(path, ['--rows', '3']);
      await sleep(500);
      await db.close();
    }
    const client = new FileReplicaClient({ root });
    const gens = await listGenerations(client);
    expect(gens.length).toBe(1);
    // The generation's first snapshot, and at least one taken for the interval.
    expect((await collect(listSnapshots(client, gens[0]!))).length).toBeGreaterThanOrEqual(2);
  });

  it('takes a snapshot every snapshot-interval', async () => {
    const path = join(dir, 'snapint.db');
    const root = join(dir, 'snapint-replica');
    write(path, ['--rows', '10']);
    const db = new Db(path);
    const replica = db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0, snapshotIntervalMs: 250 });
    let snapshots = 0;
    db.events.on('snapshot', () => snapshots++);
    await db.open();
    const writer = startWriter(path, ['--rows', '60', '--interval-ms', '20']);
    await writer.exited;
    await sleep(400);
    await db.flush();
    await db.close();
    // One at the start of the generation, then one per interval while the app wrote.
    expect(snapshots).toBeGreaterThanOrEqual(3);
    const gen = (await listGenerations(replica.client))[0]!;
    expect((await collect(listSnapshots(replica.client, gen))).length).toBe(snapshots);
    expect((await restoreRows(root, 'snapint')).rows).toEqual(dump(path).rows);
  });
});

describe('validation', () => {
  it('reports a replica that does not match the database', async () => {
    const path = join(dir, 'validate.db');
    const other = join(dir, 'validate-other.db');
    const root = join(dir, 'validate-replica');
    write(path, ['--rows', '200']);
    write(other, ['--rows', '300', '--size', '150']);
    const db = new Db(path);
    const replica = db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    const results: boolean[] = [];
    db.events.on('validation', (e) => results.push(e.ok));
    await db.open();
    await db.flush();
    expect(await replica.validate()).toBe(true);
    // Storage is tampered with: the latest snapshot now holds another database (valid LZ4, valid SQLite).
    const snap = await replica.snapshot();
    const key = join(root, 'generations', snap.generation, 'snapshots', `${snap.index.toString(16).padStart(8, '0')}.snapshot.lz4`);
    expect(spawnSync('lz4', ['-q', '-f', '-1', other, key]).status).toBe(0);
    expect(await replica.validate()).toBe(false);
    expect(results).toEqual([true, false]);
    await db.close();
  });
});
