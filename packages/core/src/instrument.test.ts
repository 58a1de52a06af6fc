// Storage-call instrumentation and replica lag, through a real Db on a real SQLite database with a
// real file replica. @ls/client-file comes from the workspace root's devDependencies: a dependency
// of @ls/core on it would be a cycle.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { FileReplicaClient } from '@ls/client-file';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ListEntry, ObjectInfo, OpenOptions, PutOptions, ReplicaClient } from './client.js';
import { Db } from './db.js';
import { AccessDeniedError, DeleteFailedError, NotFoundError, TransientError } from './errors.js';
import { LstreamEmitter, type LstreamEvents } from './events.js';
import { instrumentClient, storageErrorKind } from './instrument.js';
import { collect, deleteGeneration, openSnapshot, writeSnapshot } from './replica-store.js';
import { restore } from './restore.js';
import { rejection } from '@ls/test-support/helpers';

type StorageOpEvent = LstreamEvents['storage-op'];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lstream-instrument-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A SQLite database in WAL mode with a table, written to by this process as an app would. */
function writer(path: string) {
  const conn = new Database(path);
  conn.pragma('journal_mode = wal');
  conn.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)');
  const insert = conn.prepare('INSERT INTO t (body) VALUES (?)');
  const commit = conn.transaction((n: number) => {
    for (let i = 0; i < n; i++) insert.run(`row-${i}-`.padEnd(300, 'x'));
  });
  return { commit: (rows: number) => commit(rows), close: () => conn.close() };
}

/** Sizes of every object stored under a file replica's root. */
function storedSizes(root: string): number[] {
  return (readdirSync(root, { recursive: true, withFileTypes: true }) as { name: string; parentPath: string; isFile(): boolean }[])
    .filter((e) => e.isFile())
    .map((e) => statSync(join(e.parentPath, e.name)).size);
}

function recordOps(events: LstreamEmitter): StorageOpEvent[] {
  const ops: StorageOpEvent[] = [];
  events.on('storage-op', (e) => ops.push(e));
  return ops;
}

/** Resolves with the next `event` satisfying `match`. */
function next<K extends keyof LstreamEvents>(events: LstreamEmitter, event: K, match: (e: LstreamEvents[K]) => boolean = () => true) {
  return new Promise<LstreamEvents[K]>((resolve) => {
    const off = events.on(event, (e) => {
      if (!match(e)) return;
      off();
      resolve(e);
    });
  });
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);

/**
 * Test fixture: a client that hands every call to a file client, except puts while `failPuts` is
 * set, which reject with `failure` (storage down). Not a mock of lstream's code: a storage outage.
 */
class OutageClient implements ReplicaClient {
  readonly type = 'outage';
  failPuts = false;
  failure: () => Error = () => new TransientError('storage unavailable');
  constructor(readonly inner: FileReplicaClient) {}
  get capabilities() {
    return this.inner.capabilities;
  }
  async put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, options?: PutOptions): Promise<ObjectInfo> {
    if (this.failPuts) {
      // Drain nothing: a real outage fails before the body is read.
      throw this.failure();
    }
    return this.inner.put(key, body, options);
  }
  open(key: string, options?: OpenOptions): Promise<Readable> {
    return this.inner.open(key, options);
  }
  list(prefix: string, options?: { signal?: AbortSignal; delimiter?: '/' }): AsyncIterable<ListEntry> {
    return this.inner.list(prefix, options);
  }
  delete(keys: readonly string[], options?: { signal?: AbortSignal }): Promise<void> {
    return this.inner.delete(keys, options);
  }
}

describe('instrumentClient', () => {
  it('leaves every property of the wrapped client visible', () => {
    const file = new FileReplicaClient({ root: join(dir, 'visible') });
    const events = new LstreamEmitter();
    const c = instrumentClient(file, events, { db: '/x.db', replica: 'r' });
    expect(c).toBeInstanceOf(FileReplicaClient);
    expect(c.type).toBe('file');
    expect(c.capabilities).toBe(file.capabilities);
    expect((c as FileReplicaClient).root).toBe(file.root);
    // Instrumenting twice for the same emitter would count every call twice.
    expect(instrumentClient(c, events, { db: '/x.db', replica: 'r' })).toBe(c);
  });

  it('reports PUT, GET, LIST and DELETE with their bytes for the storage calls of a Db', async () => {
    const path = join(dir, 'ops.db');
    const root = join(dir, 'ops-replica');
    const w = writer(path);
    w.commit(50);
    const db = new Db(path);
    const replica = db.addReplica(new FileReplicaClient({ root }), { syncIntervalMs: 0 });
    const ops = recordOps(db.events);
    await db.open();
    w.commit(200);
    await db.flush();
    w.commit(20);
    await db.close();
    w.close();

    for (const e of ops) {
      expect(e).toMatchObject({ db: db.path, replica: 'file', replicaType: 'file' });
      expect(e.error).toBeUndefined();
    }
    // Every object in storage was one PUT of exactly its size, and no PUT is unaccounted for.
    const puts = ops.filter((e) => e.op === 'PUT');
    expect(puts.length).toBeGreaterThan(1);
    expect(sorted(puts.map((e) => e.bytes))).toEqual(sorted(storedSizes(root)));
    // The replica looked for what storage held before writing the generation's snapshot.
    expect(ops.some((e) => e.op === 'LIST' && e.bytes === 0)).toBe(true);

    // A restore through the replica's client reads every object of the generation once, whole.
    ops.length = 0;
    await restore(replica.client, { outputPath: join(dir, 'ops-restored.db') });
    const gets = ops.filter((e) => e.op === 'GET');
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.reduce((a, e) => a + e.bytes, 0)).toBe(storedSizes(root).reduce((a, b) => a + b, 0));
    expect(ops.filter((e) => e.op === 'LIST').length).toBeGreaterThan(0);

    ops.length = 0;
    const generation = db.pos!.generation;
    await deleteGeneration(replica.client, generation);
    expect(storedSizes(root)).toEqual([]);
    const deletes = ops.filter((e) => e.op === 'DELETE');
    expect(deletes.length).toBeGreaterThan(0);
    expect(deletes.every((e) => e.bytes === 0 && e.error === undefined)).toBe(true);
  });

  it('passes errors through as the same object and names their kind', async () => {
    const events = new LstreamEmitter();
    const ops = recordOps(events);
    const outage = new OutageClient(new FileReplicaClient({ root: join(dir, 'errors') }));
    const c = instrumentClient(outage, events, { db: '/e.db', replica: 'outage' });

    const missing = await rejection(openSnapshot(c, '0123456789abcdef', 7));
    expect(missing).toBeInstanceOf(NotFoundError);
    expect(ops.at(-1)).toMatchObject({ op: 'GET', bytes: 0, error: missing, errorKind: 'not-found', replicaType: 'outage' });
    expect(ops.at(-1)!.error).toBe(missing);

    outage.failPuts = true;
    const transient = await rejection(c.put('a/b', new Uint8Array(10)));
    expect(ops.at(-1)).toMatchObject({ op: 'PUT', bytes: 0, errorKind: 'transient' });
    expect(ops.at(-1)!.error).toBe(transient);

    outage.failure = () => new AccessDeniedError('no write permission on the test bucket');
    const denied = await rejection(c.put('a/b', new Uint8Array(10)));
    expect(ops.at(-1)).toMatchObject({ op: 'PUT', errorKind: 'permission' });
    expect(ops.at(-1)!.error).toBe(denied);
    outage.failPuts = false;

    const ac = new AbortController();
    ac.abort();
    const aborted = await rejection(c.put('a/b', new Uint8Array(10), { signal: ac.signal }));
    expect(ops.at(-1)).toMatchObject({ op: 'PUT', errorKind: 'aborted' });
    expect(ops.at(-1)!.error).toBe(aborted);

    const invalid = await rejection(collect(c.list('../escape')));
    expect(ops.at(-1)).toMatchObject({ op: 'LIST', errorKind: 'invalid-key' });
    expect(ops.at(-1)!.error).toBe(invalid);
  });

  it('counts the bytes a reader consumed when it stops early, and one LIST per listing', async () => {
    const events = new LstreamEmitter();
    const ops = recordOps(events);
    const c = instrumentClient(new FileReplicaClient({ root: join(dir, 'partial') }), events, { db: '/p.db', replica: 'file' });
    const body = randomBytes(4 * 1024 * 1024);
    const info = await writeSnapshot(c, '0123456789abcdef', 1, body);
    expect(ops.at(-1)).toMatchObject({ op: 'PUT', bytes: info.size });

    const reported = next(events, 'storage-op', (e) => e.op === 'GET');
    const stream = await c.open('generations/0123456789abcdef/snapshots/00000001.snapshot.lz4');
    let read = 0;
    for await (const chunk of stream) {
      read += (chunk as Buffer).length;
      break;
    }
    // Node destroys a stream whose reader breaks off with an AbortError: the GET ends aborted,
    // having carried what the reader took.
    const get = await reported;
    expect(get).toMatchObject({ op: 'GET', bytes: read, errorKind: 'aborted' });
    expect(read).toBeGreaterThan(0);
    expect(read).toBeLessThan(info.size);

    ops.length = 0;
    for await (const _ of c.list('generations/', { delimiter: '/' })) break;
    await collect(c.list('generations/'));
    expect(ops.map((e) => e.op)).toEqual(['LIST', 'LIST']);
  });

  it('gives a batch delete failure the kind its failures share', () => {
    const notFound = new NotFoundError('k');
    expect(storageErrorKind(new DeleteFailedError([{ key: 'a', error: new TransientError('slow down') }]))).toBe('transient');
    expect(storageErrorKind(new DeleteFailedError([{ key: 'a', error: new TransientError('x') }, { key: 'b', error: notFound }]))).toBe('other');
    expect(storageErrorKind(new Error('boom'))).toBe('other');
    expect(storageErrorKind(Object.assign(new Error('throttled'), { retryable: true }))).toBe('transient');
  });
});

describe('replica lag', () => {
  it('counts from the oldest commit still missing, not from when the replica was last caught up', async () => {
    const path = join(dir, 'lag-steady.db');
    const w = writer(path);
    w.commit(10);
    const gated = new OutageClient(new FileReplicaClient({ root: join(dir, 'lag-steady-replica') }));
    const db = new Db(path);
    const replica = db.addReplica(gated, { name: 'primary', syncIntervalMs: 0 });
    await db.open();
    await db.flush();
    w.commit(1);
    await db.flush();
    expect(replica.status().lagMs).toBe(0);

    // Commit A: its upload is held at the storage until released.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const inner = gated.put.bind(gated);
    let uploads = 0;
    gated.put = async (key, body, options) => {
      uploads++;
      await held;
      return inner(key, body, options);
    };
    w.commit(1);
    await db.sync();
    while (uploads === 0) await new Promise((r) => setTimeout(r, 5));
    const aStart = replica.status().pendingSince!.getTime();
    await new Promise((r) => setTimeout(r, 60));
    // Commit B arrives while A uploads: the sync ships A only.
    const beforeB = Date.now();
    w.commit(1);
    await db.sync();
    // The status the moment A is durable (before the replica goes on to ship B).
    const afterA = next(db.events, 'replica-sync').then(() => replica.status());
    release();
    const atA = await afterA;
    // Once A is durable, the oldest commit missing is B: the clock restarted from B, not from A.
    expect(atA.pendingSince).toBeInstanceOf(Date);
    expect(atA.pendingSince!.getTime()).toBeGreaterThanOrEqual(beforeB);
    expect(atA.pendingSince!.getTime()).toBeGreaterThan(aStart);
    gated.put = inner;
    await db.flush();
    expect(replica.status()).toMatchObject({ pendingSince: undefined, lagMs: 0 });
    await db.close();
    w.close();
  });


  it('rises while storage fails and returns to 0 once the replica catches up', async () => {
    const path = join(dir, 'lag.db');
    const w = writer(path);
    w.commit(10);
    const outage = new OutageClient(new FileReplicaClient({ root: join(dir, 'lag-replica') }));
    const db = new Db(path);
    const replica = db.addReplica(outage, { name: 'primary', syncIntervalMs: 0 });
    const ops = recordOps(db.events);
    await db.open();
    await db.flush();
    // The first flush may return while the replica still ships the frame lstream itself wrote after
    // the snapshot's checkpoint; a commit of the app's, flushed, leaves it caught up.
    w.commit(1);
    await db.flush();
    expect(replica.status()).toMatchObject({ pendingSince: undefined, lagMs: 0 });

    outage.failPuts = true;
    const firstError = next(db.events, 'replica-error');
    w.commit(10);
    await db.sync();
    const { error } = await firstError;
    const s1 = replica.status();
    expect(s1.pendingSince).toBeInstanceOf(Date);
    expect(s1.lastError).toBe(error);
    // The failed PUT was reported with the very error the replica got.
    expect(ops.some((e) => e.op === 'PUT' && e.error === error && e.errorKind === 'transient')).toBe(true);

    // The next attempt comes after a backoff delay: lag has grown by then, from the same start.
    await next(db.events, 'replica-error');
    const s2 = replica.status();
    expect(s2.pendingSince).toEqual(s1.pendingSince);
    expect(s2.lagMs).toBeGreaterThan(s1.lagMs);
    expect((await db.status()).replicas[0]).toMatchObject({ name: 'primary', type: 'outage' });

    outage.failPuts = false;
    await db.flush();
    expect(replica.status()).toMatchObject({ pendingSince: undefined, lagMs: 0, lastError: undefined });
    const st = await db.status();
    expect(st).toMatchObject({ path: db.path, lastError: undefined });
    expect(st.pos).toEqual(db.pos);
    expect(st.replicas[0]).toMatchObject({ lagMs: 0 });
    expect(st.dbBytes).toBeGreaterThan(0);
    expect(st.walBytes).toBeGreaterThan(0);
    expect(st.shadowWalBytes).toBeGreaterThan(0);
    expect(st.lastSyncAt).toBeInstanceOf(Date);
    await db.close();
    w.close();
  });
});

describe('final sync and listeners', () => {
  it("makes every replica's final sync even when another replica's storage is down", async () => {
    const path = join(dir, 'final.db');
    const w = writer(path);
    w.commit(20);
    const db = new Db(path);
    const down = new OutageClient(new FileReplicaClient({ root: join(dir, 'final-down') }));
    down.failure = () => new AccessDeniedError('access denied (test: storage refuses writes)');
    db.addReplica(down, { name: 'down', syncIntervalMs: 0 });
    const healthyRoot = join(dir, 'final-healthy');
    db.addReplica(new FileReplicaClient({ root: healthyRoot }), { name: 'healthy', syncIntervalMs: 60_000 });
    await db.open();
    await db.flush();
    down.failPuts = true;
    // Committed just before close; the healthy replica's 60 s interval means only the final sync ships it.
    w.commit(300);
    const err = await rejection(db.close());
    w.close();
    expect(err).toBeInstanceOf(AccessDeniedError);

    const out = join(dir, 'final-restored.db');
    await restore(new FileReplicaClient({ root: healthyRoot }), { outputPath: out });
    const count = (p: string) => {
      const c = new Database(p, { readonly: true });
      try {
        return (c.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
      } finally {
        c.close();
      }
    };
    expect(count(out)).toBe(320);
  });

  it('keeps calling the other listeners and the engine when a listener throws, and rethrows its error later', async () => {
    const events = new LstreamEmitter();
    const seen: number[] = [];
    const boom = new Error('listener bug');
    events.on('shadow-dropped', () => {
      throw boom;
    });
    events.on('shadow-dropped', (e) => seen.push(e.index));
    const deferred: (() => void)[] = [];
    const original = process.nextTick;
    process.nextTick = ((fn: () => void) => void deferred.push(fn)) as typeof process.nextTick;
    try {
      expect(() => events.emit('shadow-dropped', { db: '/x.db', generation: '0123456789abcdef', index: 3, bytes: 1 })).not.toThrow();
    } finally {
      process.nextTick = original;
    }
    expect(seen).toEqual([3]);
    expect(deferred).toHaveLength(1);
    expect(() => deferred[0]!()).toThrow(boom);
  });
});
