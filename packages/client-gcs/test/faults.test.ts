import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { AccessDeniedError, Db, NotFoundError, TransientError, collect, compareKeys, isRetryable, restore, type ResumingReadStream } from '@ls/core';
import { GCS_PROTOCOL, startFaultProxy, type FaultProxy, pseudoRandom, readAll, rejection } from '@ls/test-support';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_RETRIES } from '../src/index.js';
import { emulatorClient, startGcsEmulator, type GcsEmulatorHandle } from './gcs-emulator-server.js';

const MiB = 1024 * 1024;

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The issue's fault mix: 5% of requests answered 500/503, some resets, some downloads cut short, some answers 2 s late. */
const ISSUE_RATES = { serverError: 0.05, resetBefore: 0.03, resetAfter: 0.03, truncate: 0.1, stall: 0.04, stallMs: 2000 };
/** Retries a little faster than the SDK's default (about 1 s, 2 s, 4 s, ...) so the tests stay short. */
const QUICK_RETRIES = { retryDelayMultiplier: 1.2, maxRetries: 6, readIdleTimeoutMs: 1000 };

let server: GcsEmulatorHandle;
const proxies: FaultProxy[] = [];
beforeAll(async () => {
  server = await startGcsEmulator();
});
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close();
});
afterAll(async () => {
  await server?.stop();
});

async function proxied(options: Parameters<typeof startFaultProxy>[1] = {}): Promise<FaultProxy> {
  const p = await startFaultProxy(server.endpoint, { protocol: GCS_PROTOCOL, ...options });
  proxies.push(p);
  return p;
}

describe('GcsReplicaClient through a faulty network', () => {
  it('gives up on storage that resets every connection after a few retries, by default, so its caller can say so', async () => {
    const proxy = await proxied({ seed: 3, maxFaultsPerInvocation: 1000, rates: { resetBefore: 1 } });
    const bucket = await server.newBucket();
    const client = emulatorClient(proxy.endpoint, bucket);
    const err = await rejection(collect(client.list('gen/')));
    expect(TransientError.isInstance(err), String(err)).toBe(true);
    // The first request and DEFAULT_MAX_RETRIES retries (before, the SDK's defaults made it 6
    // requests over about a minute), and nothing more.
    expect(proxy.injected['reset-before']).toBe(1 + DEFAULT_MAX_RETRIES);
    expect(DEFAULT_MAX_RETRIES).toBe(3);
  });

  it('round-trips put, open, list and delete while requests fail, connections reset and answers come 2 s late', async () => {
    const proxy = await proxied({ seed: 11, maxFaultsPerInvocation: 2, rates: ISSUE_RATES });
    const bucket = await server.newBucket();
    const client = emulatorClient(proxy.endpoint, bucket, QUICK_RETRIES);
    try {
      const small = Array.from({ length: 40 }, (_, i) => ({ key: `gen/wal/${String(i).padStart(8, '0')}.wal.lz4`, body: pseudoRandom(1000 + i * 37, i + 1) }));
      for (const s of small) expect((await client.put(s.key, s.body)).size).toBe(s.body.length);
      const big = pseudoRandom(12 * MiB + 12345, 99);
      async function* chunks() {
        for (let off = 0; off < big.length; off += 700_001) yield big.subarray(off, off + 700_001);
      }
      expect((await client.put('gen/snapshots/00000001.snapshot.lz4', chunks())).size).toBe(big.length);

      for (const s of small) expect((await readAll(await client.open(s.key))).equals(s.body)).toBe(true);
      expect(sha256(await readAll(await client.open('gen/snapshots/00000001.snapshot.lz4')))).toBe(sha256(big));
      const ranged = await readAll(await client.open('gen/snapshots/00000001.snapshot.lz4', { range: { start: 5 * MiB - 10, end: 6 * MiB } }));
      expect(ranged.equals(big.subarray(5 * MiB - 10, 6 * MiB + 1))).toBe(true);

      const paged = emulatorClient(proxy.endpoint, bucket, { ...QUICK_RETRIES, path: client.root, listPageSize: 7 });
      const listed = await collect(paged.list('gen/'));
      expect(listed.map((e) => e.key)).toEqual([...small.map((s) => s.key), 'gen/snapshots/00000001.snapshot.lz4'].sort(compareKeys));
      const rolled = await collect(paged.list('gen/', { delimiter: '/' }));
      expect(rolled.map((e) => [e.type, e.key])).toEqual([
        ['prefix', 'gen/snapshots/'],
        ['prefix', 'gen/wal/'],
      ]);
      await paged.close();

      await client.delete([...small.map((s) => s.key), 'gen/snapshots/00000001.snapshot.lz4', 'gen/missing']);
      expect(await collect(client.list(''))).toEqual([]);
      expect(server.objectNames(bucket)).toEqual([]);

      for (const kind of ['error', 'reset-before', 'reset-after', 'truncate', 'stall']) {
        expect(proxy.injected[kind] ?? 0, `${kind} faults injected: ${JSON.stringify(proxy.injected)}`).toBeGreaterThan(0);
      }
      // Every request carried the SDK's invocation id, so retries of one operation are told apart.
      expect(proxy.requests.filter((r) => GCS_PROTOCOL.invocationId(r) === '')).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('keeps replicating a SQLite database through the faults and restores it byte for byte', async () => {
    const proxy = await proxied({ seed: 5, maxFaultsPerInvocation: 2, rates: ISSUE_RATES });
    const bucket = await server.newBucket();
    const dir = await mkdtemp(join(tmpdir(), 'lstream-gcs-faults-'));
    const dbPath = join(dir, 'app.db');
    const writer = new Database(dbPath);
    const client = emulatorClient(proxy.endpoint, bucket, QUICK_RETRIES);
    try {
      writer.pragma('journal_mode = WAL');
      writer.pragma('busy_timeout = 5000');
      writer.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
      const db = new Db(dbPath);
      db.addReplica(client, { syncIntervalMs: 0 });
      await db.open();
      const insert = writer.prepare('INSERT INTO t (v) VALUES (?)');
      for (let batch = 0; batch < 30; batch++) {
        writer.transaction(() => {
          for (let i = 0; i < 20; i++) insert.run(pseudoRandom(500, batch * 100 + i + 1));
        })();
        if (batch % 5 === 4) await db.flush();
      }
      await db.flush();
      await db.close();
      writer.pragma('wal_checkpoint(TRUNCATE)');
      const sourceRows = writer.prepare('SELECT id, v FROM t ORDER BY id').all();
      writer.close();

      const out = join(dir, 'restored.db');
      await restore(client, { outputPath: out, integrityCheck: true });
      const restored = new Database(out, { readonly: true });
      try {
        expect(restored.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 600 });
        expect(restored.prepare('SELECT id, v FROM t ORDER BY id').all()).toEqual(sourceRows);
      } finally {
        restored.close();
      }
      expect(Object.values(proxy.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    } finally {
      if (writer.open) writer.close();
      await client.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('resumes a download whose connection drops mid-body, from the byte it stopped at, on the same generation', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    // The SDK's HTTP layer leaves a body whose connection dropped hanging; the idle timeout notices.
    const client = emulatorClient(proxy.endpoint, bucket, { readIdleTimeoutMs: 300 });
    try {
      const body = pseudoRandom(3 * MiB, 5);
      await client.put('obj', body);
      let cut = 0;
      proxy.rules.push((r) => (GCS_PROTOCOL.isObjectRead!(r) && r.path.endsWith('obj') && cut++ < 3 ? { kind: 'truncate' } : undefined));
      const stream = await client.open('obj');
      expect((await readAll(stream)).equals(body)).toBe(true);
      expect((stream as ResumingReadStream).resumes).toBe(3);
      const gets = proxy.requests.filter((r) => GCS_PROTOCOL.isObjectRead!(r) && r.path.endsWith('obj'));
      expect(gets).toHaveLength(4);
      expect(gets[0]!.headers.range).toBeUndefined();
      for (const g of gets.slice(1)) {
        expect(g.headers.range).toMatch(/^bytes=\d+-3145727$/);
        expect(g.query.get('generation')).toMatch(/^\d+$/);
      }
    } finally {
      await client.close();
    }
  });

  it('gives up with a TransientError once retries are spent, and fails fast on 403 and 401', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const client = emulatorClient(proxy.endpoint, bucket, { maxRetries: 2, retryDelayMultiplier: 1.01 });
    try {
      proxy.rules = [(r) => (r.method === 'POST' ? { kind: 'error', status: 503, code: 'backendError' } : undefined)];
      const slow = await rejection(client.put('k', Buffer.from('x')));
      expect(TransientError.isInstance(slow), String(slow)).toBe(true);
      expect(isRetryable(slow)).toBe(true);
      expect(proxy.requests.filter((r) => r.method === 'POST')).toHaveLength(3);

      proxy.rules = [];
      await client.put('k', Buffer.from('x'));
      for (const [method, permission, call] of [
        ['POST', 'storage.objects.create', () => client.put('k', Buffer.from('y'))],
        ['GET', 'storage.objects.get', () => client.open('k')],
        ['GET', 'storage.objects.list', () => collect(client.list(''))],
        ['DELETE', 'storage.objects.delete', () => client.delete(['k', 'k2', 'k3'])],
      ] as const) {
        proxy.requests.length = 0;
        proxy.rules = [
          (r) =>
            r.method === method
              ? { kind: 'error', status: 403, code: 'forbidden', message: `robot@p.iam.gserviceaccount.com does not have ${permission} access to the Google Cloud Storage object.` }
              : undefined,
        ];
        const denied = await rejection(call());
        expect(AccessDeniedError.isInstance(denied), `${method}: ${String(denied)}`).toBe(true);
        expect(isRetryable(denied)).toBe(false);
        expect((denied as Error).message).toContain(permission);
        expect(proxy.requests.length, `${method} requests`).toBeLessThanOrEqual(method === 'DELETE' ? 3 : 1);
      }

      proxy.requests.length = 0;
      proxy.rules = [(r) => (r.method === 'GET' ? { kind: 'error', status: 401, code: 'authError', message: 'Invalid Credentials' } : undefined)];
      const unauth = await rejection(client.open('k'));
      expect(AccessDeniedError.isInstance(unauth), String(unauth)).toBe(true);
      expect((unauth as Error).message).toMatch(/GOOGLE_APPLICATION_CREDENTIALS/);
      expect(proxy.requests).toHaveLength(1);

      proxy.rules = [(r) => (r.method === 'GET' ? { kind: 'error', status: 404, code: 'notFound', message: 'No such object: b/k' } : undefined)];
      expect(NotFoundError.isInstance(await rejection(client.open('k')))).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('cuts short a single-request upload the server stops answering, and retries it', async () => {
    // The SDK's own timeout did not end a request whose server went silent (a stopped emulator: no
    // answer for 10 minutes); each attempt now has its deadline.
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const client = emulatorClient(proxy.endpoint, bucket, { ...QUICK_RETRIES, maxRetries: 2, requestTimeoutMs: 500 });
    try {
      let held = 0;
      proxy.rules = [(r) => (r.method === 'POST' && held++ < 1 ? { kind: 'delay', ms: 30_000 } : undefined)];
      const body = pseudoRandom(100_000, 3);
      const t0 = performance.now();
      expect((await client.put('silent-once', body)).size).toBe(body.length);
      expect(performance.now() - t0).toBeLessThan(15_000);
      expect((await readAll(await client.open('silent-once'))).equals(body)).toBe(true);

      proxy.rules = [(r) => (r.method === 'POST' ? { kind: 'delay', ms: 30_000 } : undefined)];
      const silent = await rejection(client.put('silent-always', body));
      expect(TransientError.isInstance(silent), String(silent)).toBe(true);
      expect((silent as Error).message).toContain('no answer within 500 ms');
    } finally {
      await client.close();
    }
  });

  it('gives up a resumable upload that makes no progress, with a TransientError, so the caller starts it again', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const client = emulatorClient(proxy.endpoint, bucket, { ...QUICK_RETRIES, resumableThreshold: MiB, uploadChunkSize: 4 * MiB, requestTimeoutMs: 500 });
    try {
      const body = pseudoRandom(3 * MiB, 5);
      async function* pieces() {
        for (let off = 0; off < body.length; off += 100_000) yield body.subarray(off, off + 100_000);
      }
      // The chunk's PUT is held: the session asks for nothing more and never finishes.
      proxy.rules = [(r) => (r.method === 'PUT' ? { kind: 'delay', ms: 30_000 } : undefined)];
      const t0 = performance.now();
      const stuck = await rejection(client.put('stuck', pieces()));
      expect(performance.now() - t0).toBeLessThan(15_000);
      expect(TransientError.isInstance(stuck), String(stuck)).toBe(true);
      expect((stuck as Error).message).toContain('made no progress for 500 ms');
      proxy.rules = [];
      expect((await client.put('stuck', pieces())).size).toBe(body.length);
      expect((await readAll(await client.open('stuck'))).equals(body)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('stores nothing when a single-request upload is cut off, and the retry stores the whole body', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const client = emulatorClient(proxy.endpoint, bucket, QUICK_RETRIES);
    try {
      let resets = 0;
      proxy.rules = [(r) => (r.method === 'POST' && resets++ < 2 ? { kind: 'reset-before' } : undefined)];
      const body = pseudoRandom(2 * MiB, 8);
      expect((await client.put('whole', body)).size).toBe(body.length);
      expect(resets).toBe(3);
      expect((await readAll(await client.open('whole'))).equals(body)).toBe(true);
    } finally {
      await client.close();
    }
  });
});
