// The metrics of a real Db replicating a real SQLite database to a real file replica, scraped over
// HTTP as Prometheus would.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { FileReplicaClient } from '@ls/client-file';
import {
  Db,
  InvalidArgumentError,
  LstreamEmitter,
  TransientError,
  type ListEntry,
  type LstreamEvents,
  type ObjectInfo,
  type OpenOptions,
  type PutOptions,
  type ReplicaClient,
} from '@ls/core';
import Database from 'better-sqlite3';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LstreamMetrics } from './lstream-metrics.js';
import { MetricsServerError, metricsHandler, parseListenAddress, serveMetrics } from './serve.js';

let dir: string;
const servers: Server[] = [];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lstream-metrics-'));
});
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** Litestream v0.3's metrics (reference §5): exact names and types. */
const LITESTREAM_METRICS: Record<string, 'gauge' | 'counter'> = {
  litestream_db_size: 'gauge',
  litestream_wal_size: 'gauge',
  litestream_total_wal_bytes: 'counter',
  litestream_shadow_wal_index: 'gauge',
  litestream_shadow_wal_size: 'gauge',
  litestream_sync_count: 'counter',
  litestream_sync_error_count: 'counter',
  litestream_sync_seconds: 'counter',
  litestream_checkpoint_count: 'counter',
  litestream_checkpoint_error_count: 'counter',
  litestream_checkpoint_seconds: 'counter',
  litestream_replica_wal_bytes: 'counter',
  litestream_replica_wal_index: 'gauge',
  litestream_replica_wal_offset: 'gauge',
  litestream_replica_validation_total: 'counter',
  litestream_replica_operation_total: 'counter',
  litestream_replica_operation_bytes: 'counter',
};

/** A SQLite database in WAL mode, written to by this process as an app would. */
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

/** A parsed exposition: `# TYPE` lines and samples. */
interface Exposition {
  types: Map<string, string>;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

function parse(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Exposition['samples'] = [];
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, '$1');
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { types, samples };
}

/** Returns the value of the one sample of `name` whose labels include `labels` (undefined when none). */
function value(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value;
}

/** Serves `metricsHandler` on a real HTTP server; returns its base URL. */
async function serve(metrics: LstreamMetrics): Promise<string> {
  const server = createServer(metricsHandler(metrics));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function scrape(base: string): Promise<Exposition> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  return parse(await res.text());
}

function next<K extends keyof LstreamEvents>(events: LstreamEmitter, event: K) {
  return new Promise<LstreamEvents[K]>((resolve) => {
    const off = events.on(event, (e) => {
      off();
      resolve(e);
    });
  });
}

/**
 * Test fixture: hands every call to a file client, except puts while `failPuts` is set, which fail
 * as an unavailable store would. A storage outage, not a mock of lstream's code.
 */
class OutageClient implements ReplicaClient {
  readonly type = 'outage';
  failPuts = false;
  constructor(readonly inner: FileReplicaClient) {}
  get capabilities() {
    return this.inner.capabilities;
  }
  async put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, options?: PutOptions): Promise<ObjectInfo> {
    if (this.failPuts) throw new TransientError('storage unavailable (503)');
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

describe('LstreamMetrics', () => {
  it("exposes Litestream's metrics under their exact names and moves them as the writer commits", async () => {
    const path = join(dir, 'app.db');
    const w = writer(path);
    w.commit(20);
    const db = new Db(path, { minCheckpointPageCount: 10 });
    db.addReplica(new FileReplicaClient({ root: join(dir, 'app-replica') }), { syncIntervalMs: 0 });
    const metrics = new LstreamMetrics();
    metrics.observe(db.events, () => [db]);
    const base = await serve(metrics);
    const started = Date.now() / 1000;
    await db.open();
    await db.flush();
    w.commit(1);
    await db.flush();

    const before = await scrape(base);
    for (const [name, type] of Object.entries(LITESTREAM_METRICS)) expect(before.types.get(name), name).toBe(type);
    // Default process metrics are on unless turned off.
    expect(before.types.has('process_cpu_user_seconds_total')).toBe(true);
    expect(before.types.has('nodejs_eventloop_lag_seconds')).toBe(true);

    const d = { db: db.path };
    const r = { db: db.path, name: 'file' };
    const put = { replica_type: 'file', operation: 'PUT' };
    expect(value(before, 'litestream_sync_count', d)).toBeGreaterThan(0);
    expect(value(before, 'litestream_snapshot_total', r)).toBe(1);
    expect(value(before, 'litestream_replica_lag_seconds', r)).toBe(0);
    // Every database and replica has its series from the start, at 0 until something happens.
    expect(value(before, 'litestream_sync_error_count', d)).toBe(0);
    expect(value(before, 'litestream_replica_sync_errors_total', r)).toBe(0);
    expect(value(before, 'litestream_replica_operation_total', { replica_type: 'file', operation: 'DELETE' })).toBe(0);

    w.commit(300);
    await db.flush();
    const after = await scrape(base);
    const pos = db.pos!;

    expect(value(after, 'litestream_sync_count', d)).toBeGreaterThan(value(before, 'litestream_sync_count', d)!);
    expect(value(after, 'litestream_sync_seconds', d)).toBeGreaterThan(0);
    expect(value(after, 'litestream_total_wal_bytes', d)).toBeGreaterThan(value(before, 'litestream_total_wal_bytes', d)!);
    expect(value(after, 'litestream_replica_operation_total', put)).toBeGreaterThan(value(before, 'litestream_replica_operation_total', put)!);
    expect(value(after, 'litestream_replica_operation_bytes', put)).toBeGreaterThan(value(before, 'litestream_replica_operation_bytes', put)!);
    expect(value(after, 'litestream_replica_wal_bytes', r)).toBeGreaterThan(value(before, 'litestream_replica_wal_bytes', r)!);
    // 300 rows of 300 bytes pass the 10-page threshold: lstream checkpointed, labelled by mode.
    expect(value(after, 'litestream_checkpoint_count', { ...d, mode: 'PASSIVE' })).toBeGreaterThan(0);
    expect(value(after, 'litestream_checkpoint_seconds', { ...d, mode: 'PASSIVE' })).toBeGreaterThan(0);

    // Positions: the replica holds exactly what the shadow WAL holds, and is not behind.
    expect(value(after, 'litestream_shadow_wal_index', d)).toBe(pos.index);
    expect(value(after, 'litestream_replica_wal_index', r)).toBe(pos.index);
    expect(value(after, 'litestream_replica_wal_offset', r)).toBe(pos.offset);
    expect([value(after, 'litestream_replica_wal_index', r), value(after, 'litestream_replica_wal_offset', r)]).not.toEqual([
      value(before, 'litestream_replica_wal_index', r),
      value(before, 'litestream_replica_wal_offset', r),
    ]);
    expect(value(after, 'litestream_replica_lag_seconds', r)).toBe(0);
    expect(value(after, 'litestream_replica_last_sync_timestamp_seconds', r)).toBeGreaterThanOrEqual(Math.floor(started));
    expect(value(after, 'litestream_replica_operation_seconds_count', put)).toBeGreaterThan(0);

    // Sizes are read at scrape time.
    expect(value(after, 'litestream_db_size', d)).toBe(statSync(path).size);
    expect(value(after, 'litestream_wal_size', d)).toBe(statSync(`${path}-wal`).size);
    expect(value(after, 'litestream_shadow_wal_size', d)).toBeGreaterThan(0);

    await db.close();
    w.close();
  });

  it('shows lag and failures while storage is down, and lag 0 once the replica caught up', async () => {
    const path = join(dir, 'outage.db');
    const w = writer(path);
    w.commit(10);
    const outage = new OutageClient(new FileReplicaClient({ root: join(dir, 'outage-replica') }));
    const db = new Db(path);
    db.addReplica(outage, { name: 'backup', syncIntervalMs: 0 });
    const metrics = new LstreamMetrics({ collectDefault: false });
    metrics.observe(db.events, () => [db]);
    const base = await serve(metrics);
    await db.open();
    await db.flush();

    outage.failPuts = true;
    const failed = next(db.events, 'replica-error');
    w.commit(10);
    await db.sync();
    await failed;
    await next(db.events, 'replica-error');
    const down = await scrape(base);
    const r = { db: db.path, name: 'backup' };
    expect(down.types.has('process_cpu_user_seconds_total')).toBe(false);
    expect(value(down, 'litestream_replica_lag_seconds', r)).toBeGreaterThan(0);
    expect(value(down, 'litestream_replica_sync_errors_total', r)).toBeGreaterThanOrEqual(2);
    expect(
      value(down, 'litestream_replica_operation_errors_total', { replica_type: 'outage', operation: 'PUT', kind: 'transient' }),
    ).toBeGreaterThanOrEqual(2);

    outage.failPuts = false;
    await db.flush();
    const up = await scrape(base);
    expect(value(up, 'litestream_replica_lag_seconds', r)).toBe(0);
    expect(value(up, 'litestream_replica_wal_offset', r)).toBe(db.pos!.offset);
    await db.close();
    w.close();
  });

  it('answers HEAD, refuses other methods and paths, and leaves out only the database whose status cannot be read', async () => {
    const open = async (name: string) => {
      const path = join(dir, `${name}.db`);
      const w = writer(path);
      w.commit(5);
      const db = new Db(path);
      db.addReplica(new FileReplicaClient({ root: join(dir, `${name}-replica`) }));
      await db.open();
      await db.flush();
      await db.close();
      w.close();
      return db;
    };
    const db = await open('http');
    const good = await open('http-good');
    const metrics = new LstreamMetrics({ collectDefault: false });
    metrics.observe(new LstreamEmitter(), () => [db, good]);
    const base = await serve(metrics);

    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toBe(metrics.contentType);
    expect(await head.text()).toBe('');
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`)).status).toBe(404);
    expect((await fetch(`${base}/metrics?x=1`)).status).toBe(200);

    // The shadow WAL directory of one database is not a directory any more: its status cannot be
    // read. The scrape still answers, without that database's gauges, counting the failure.
    const walDir = join(db.metaPath, 'generations', db.pos!.generation, 'wal');
    rmSync(walDir, { recursive: true });
    writeFileSync(walDir, 'not a directory');
    const broken = await scrape(base);
    expect(value(broken, 'litestream_db_size', { db: good.path })).toBe(statSync(good.path).size);
    expect(value(broken, 'litestream_replica_wal_index', { db: good.path, name: 'file' })).toBe(good.pos!.index);
    expect(value(broken, 'litestream_db_size', { db: db.path })).toBeUndefined();
    expect(value(broken, 'litestream_db_status_errors_total', { db: db.path })).toBe(1);
    expect(value(broken, 'litestream_db_status_errors_total', { db: good.path })).toBe(0);
  });

  it("counts failed syncs and checkpoints as attempts too, as Litestream v0.3's sync_count and checkpoint_count do", async () => {
    const events = new LstreamEmitter();
    const metrics = new LstreamMetrics({ collectDefault: false });
    metrics.observe(events, () => []);
    const db = '/data/app.db';
    const pos = { generation: '0123456789abcdef', index: 1, offset: 4152 } as unknown as LstreamEvents['db-sync']['pos'];
    events.emit('db-sync', { db, pos, advanced: true, bytes: 100, walBytes: 4152, dbBytes: 4096, durationMs: 2 });
    events.emit('db-sync-error', { db, error: new Error('disk full'), durationMs: 3 });
    events.emit('db-sync-error', { db, error: new Error('disk full'), durationMs: 3 });
    events.emit('checkpoint', { db, mode: 'PASSIVE', durationMs: 1 });
    events.emit('checkpoint', { db, mode: 'PASSIVE', durationMs: 1, error: new Error('SQLITE_BUSY') });
    events.emit('checkpoint', { db, mode: 'TRUNCATE', durationMs: 1, error: new Error('SQLITE_BUSY') });
    const e = parse(await metrics.metrics());
    expect(value(e, 'litestream_sync_count', { db })).toBe(3);
    expect(value(e, 'litestream_sync_error_count', { db })).toBe(2);
    expect(value(e, 'litestream_checkpoint_count', { db, mode: 'PASSIVE' })).toBe(2);
    expect(value(e, 'litestream_checkpoint_error_count', { db, mode: 'PASSIVE' })).toBe(1);
    expect(value(e, 'litestream_checkpoint_count', { db, mode: 'TRUNCATE' })).toBe(1);
    expect(value(e, 'litestream_checkpoint_error_count', { db, mode: 'TRUNCATE' })).toBe(1);
  });

  it('stops counting and reporting a database once detached', async () => {
    const path = join(dir, 'detach.db');
    const w = writer(path);
    w.commit(5);
    const db = new Db(path);
    db.addReplica(new FileReplicaClient({ root: join(dir, 'detach-replica') }), { syncIntervalMs: 0 });
    const metrics = new LstreamMetrics({ collectDefault: false });
    const detach = metrics.observe(db.events, () => [db]);
    await db.open();
    await db.flush();
    const attached = parse(await metrics.metrics());
    const d = { db: db.path };
    const syncs = value(attached, 'litestream_sync_count', d)!;
    expect(syncs).toBeGreaterThan(0);
    expect(value(attached, 'litestream_db_size', d)).toBeGreaterThan(0);

    detach();
    w.commit(50);
    await db.flush();
    const detached = parse(await metrics.metrics());
    expect(value(detached, 'litestream_sync_count', d)).toBe(syncs);
    expect(value(detached, 'litestream_db_size', d)).toBeUndefined();
    await db.close();
    w.close();
  });

  it('registers in a registry it is given, once per name', () => {
    const registry = new Registry();
    const metrics = new LstreamMetrics({ registry, collectDefault: false });
    expect(metrics.registry).toBe(registry);
    expect(registry.getSingleMetric('litestream_db_size')).toBeDefined();
    expect(() => new LstreamMetrics({ registry, collectDefault: false })).toThrow(/already been registered/);
  });
});

describe('serveMetrics', () => {
  it('serves /metrics and /healthz on a Litestream-style address, and nothing else', async () => {
    const metrics = new LstreamMetrics({ collectDefault: false });
    const s = await serveMetrics(metrics, ':0');
    try {
      expect(s.port).toBeGreaterThan(0);
      const base = `http://127.0.0.1:${s.port}`;
      const res = await fetch(`${base}/metrics`);
      expect(res.status).toBe(200);
      expect(parse(await res.text()).types.get('litestream_db_size')).toBe('gauge');
      const health = await fetch(`${base}/healthz`);
      expect([health.status, await health.text()]).toEqual([200, 'ok\n']);
      expect((await fetch(`${base}/debug/pprof/`)).status).toBe(404);

      // The port is taken now: a second server on it fails with the cause.
      const err = await serveMetrics(metrics, `127.0.0.1:${s.port}`).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MetricsServerError);
      expect((err as MetricsServerError).cause).toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await s.close();
    }
    expect(s.server.listening).toBe(false);

    const local = await serveMetrics(metrics, '127.0.0.1:0');
    expect(local.host).toBe('127.0.0.1');
    await local.close();
  });

  it('parses the address forms Litestream accepts and rejects the rest', async () => {
    expect(parseListenAddress(':9090')).toEqual({ host: undefined, port: 9090 });
    expect(parseListenAddress('localhost:9090')).toEqual({ host: 'localhost', port: 9090 });
    expect(parseListenAddress('[::1]:0')).toEqual({ host: '::1', port: 0 });
    for (const bad of ['9090', 'host', ':', ':99999', 'a:b:9090', ':-1']) {
      expect(() => parseListenAddress(bad), bad).toThrow(InvalidArgumentError);
    }
    await expect(serveMetrics(new LstreamMetrics({ collectDefault: false }), 'nope')).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});
