import { createHash } from 'node:crypto';
import { AccessDeniedError, DeleteFailedError, NotFoundError, TransientError, collect, compareKeys, isRetryable, type ResumingReadStream } from '@ls/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy, pseudoRandom, readAll, rejection } from '@ls/test-support';
import { s3rverClient, startS3rver, type S3rverHandle } from './s3rver-server.js';

const MiB = 1024 * 1024;

let server: S3rverHandle;
const proxies: FaultProxy[] = [];
beforeAll(async () => {
  server = await startS3rver();
});
afterEach(async () => {
  for (const p of proxies.splice(0)) await p.close();
});
afterAll(async () => {
  await server?.stop();
});

async function proxied(options: Parameters<typeof startFaultProxy>[1] = {}): Promise<FaultProxy> {
  const p = await startFaultProxy(server.endpoint, options);
  proxies.push(p);
  return p;
}

describe('S3ReplicaClient through a faulty network', () => {
  it('round-trips put, open, list and delete while requests fail, stall and connections reset', async () => {
    const proxy = await proxied({
      seed: 7,
      maxFaultsPerInvocation: 2,
      rates: { serverError: 0.15, resetBefore: 0.06, resetAfter: 0.06, truncate: 0.15, delay: 0.1 },
    });
    const bucket = await server.newBucket();
    // The idle timeout leaves room for s3rver on a loaded machine (at 700 ms, a CI run with other
    // work going timed a 12 MiB read out five times); the stall below outlasts it.
    const client = s3rverClient(proxy.endpoint, bucket, { partSize: 5 * MiB, uploadConcurrency: 2, maxAttempts: 5, idleTimeoutMs: 2500 });
    try {
      // One request answered later than the client waits: it times out and tries again.
      let puts = 0;
      let stalled: unknown;
      proxy.rules.push((r) => {
        if (r.method !== 'PUT' || ++puts !== 3) return undefined;
        stalled = r.headers['amz-sdk-invocation-id'];
        return { kind: 'stall', ms: 5000 };
      });
      // Small objects: one PutObject each.
      const small = Array.from({ length: 30 }, (_, i) => ({ key: `gen/wal/${String(i).padStart(8, '0')}.wal.lz4`, body: pseudoRandom(1000 + i * 37, i + 1) }));
      for (const s of small) {
        const info = await client.put(s.key, s.body);
        expect(info.size).toBe(s.body.length);
      }
      // A streamed multipart upload: 12 MiB in odd chunks, three parts.
      const big = pseudoRandom(12 * MiB + 12345, 99);
      async function* chunks() {
        for (let off = 0; off < big.length; off += 700_001) yield big.subarray(off, off + 700_001);
      }
      const info = await client.put('gen/snapshots/00000001.snapshot.lz4', chunks());
      expect(info.size).toBe(big.length);

      for (const s of small) expect((await readAll(await client.open(s.key))).equals(s.body)).toBe(true);
      const back = await readAll(await client.open('gen/snapshots/00000001.snapshot.lz4'));
      expect(createHash('sha256').update(back).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'));
      const ranged = await readAll(await client.open('gen/snapshots/00000001.snapshot.lz4', { range: { start: 5 * MiB - 10, end: 6 * MiB } }));
      expect(ranged.equals(big.subarray(5 * MiB - 10, 6 * MiB + 1))).toBe(true);

      const paged = s3rverClient(proxy.endpoint, bucket, { path: client.root, listPageSize: 7, maxAttempts: 5, idleTimeoutMs: 2500 });
      const listed = await collect(paged.list('gen/'));
      await paged.close();
      expect(listed.map((e) => e.key)).toEqual([...small.map((s) => s.key), 'gen/snapshots/00000001.snapshot.lz4'].sort(compareKeys));
      const rolled = await collect(client.list('gen/', { delimiter: '/' }));
      expect(rolled.map((e) => [e.type, e.key])).toEqual([
        ['prefix', 'gen/snapshots/'],
        ['prefix', 'gen/wal/'],
      ]);

      await client.delete([...small.map((s) => s.key), 'gen/snapshots/00000001.snapshot.lz4', 'gen/missing']);
      expect(await collect(client.list(''))).toEqual([]);

      // Every kind of fault did happen.
      for (const kind of ['error', 'reset-before', 'reset-after', 'truncate', 'delay', 'stall']) {
        expect(proxy.injected[kind] ?? 0, `${kind} faults injected: ${JSON.stringify(proxy.injected)}`).toBeGreaterThan(0);
      }
      // The stalled request timed out on the client and was sent again.
      expect(proxy.requests.filter((r) => r.headers['amz-sdk-invocation-id'] === stalled).length).toBeGreaterThan(1);
      expect(await server.pendingUploads(bucket)).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('resumes a download whose connection drops mid-body, from the byte it stopped at', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const client = s3rverClient(proxy.endpoint, bucket);
    try {
      const body = pseudoRandom(3 * MiB, 5);
      await client.put('obj', body);
      let cut = 0;
      proxy.rules.push((r) => (r.method === 'GET' && r.path.endsWith('/obj') && cut++ < 3 ? { kind: 'truncate' } : undefined));
      const stream = await client.open('obj');
      expect((await readAll(stream)).equals(body)).toBe(true);
      expect((stream as ResumingReadStream).resumes).toBe(3);
      // Resumed requests ask for the missing bytes only, pinned to the object's ETag.
      const gets = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/obj'));
      expect(gets).toHaveLength(4);
      expect(gets[0]!.headers.range).toBeUndefined();
      for (const g of gets.slice(1)) {
        expect(g.headers.range).toMatch(/^bytes=\d+-3145727$/);
        expect(g.headers['if-match']).toBeTruthy();
      }
    } finally {
      await client.close();
    }
  });

  it('gives up with a TransientError once retries are spent, and does not retry access denied', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const client = s3rverClient(proxy.endpoint, bucket, { maxAttempts: 3 });
    try {
      proxy.rules = [(r) => (r.method === 'PUT' ? { kind: 'error', status: 503, code: 'SlowDown' } : undefined)];
      const slow = await rejection(client.put('k', Buffer.from('x')));
      expect(TransientError.isInstance(slow), String(slow)).toBe(true);
      expect(isRetryable(slow)).toBe(true);
      expect(proxy.requests.filter((r) => r.method === 'PUT')).toHaveLength(3);

      proxy.requests.length = 0;
      proxy.rules = [(r) => (r.method === 'GET' ? { kind: 'error', status: 403, code: 'AccessDenied', message: 'Access Denied' } : undefined)];
      const denied = await rejection(client.open('k'));
      expect(AccessDeniedError.isInstance(denied), String(denied)).toBe(true);
      expect(isRetryable(denied)).toBe(false);
      expect((denied as Error).message).toMatch(/s3:GetObject/);
      expect(proxy.requests).toHaveLength(1);

      proxy.rules = [(r) => (r.method === 'GET' ? { kind: 'error', status: 404, code: 'NoSuchKey' } : undefined)];
      expect(NotFoundError.isInstance(await rejection(client.open('k')))).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('reports every key DeleteObjects could not delete, retrying the ones that failed for a transient reason', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const client = s3rverClient(proxy.endpoint, bucket);
    const root = client.root;
    try {
      const keys = ['a/1', 'a/2', 'a/3', 'a/4'];
      for (const k of keys) await client.put(k, Buffer.from(k));
      // S3 answers 200 and lists the keys it could not delete: a/2 denied for good, a/3 busy once.
      let deletes = 0;
      const result = (errors: [string, string][]) =>
        `<?xml version="1.0" encoding="UTF-8"?><DeleteResult>${errors
          .map(([k, code]) => `<Error><Key>${root}${k}</Key><Code>${code}</Code><Message>${code} for ${k}</Message></Error>`)
          .join('')}</DeleteResult>`;
      proxy.rules = [
        (r) => {
          if (r.method !== 'POST' || !r.query.has('delete')) return undefined;
          deletes++;
          const body =
            deletes === 1
              ? result([
                  ['a/2', 'AccessDenied'],
                  ['a/3', 'InternalError'],
                ])
              : result([['a/3', 'AccessDenied']]);
          return { kind: 'respond', status: 200, contentType: 'application/xml', body };
        },
      ];
      const err = await rejection(client.delete(keys));
      expect(DeleteFailedError.isInstance(err), String(err)).toBe(true);
      const failures = (err as DeleteFailedError).failures;
      expect(failures.map((f) => f.key).sort()).toEqual(['a/2', 'a/3']);
      for (const f of failures) expect(AccessDeniedError.isInstance(f.error), String(f.error)).toBe(true);
      // The transient failure was tried again on its own; the permanent one was not.
      expect(deletes).toBe(2);
    } finally {
      await client.close();
    }
  });

  it('deletes more than 1000 keys in batches of at most 1000', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const client = s3rverClient(proxy.endpoint, bucket);
    try {
      const keys = Array.from({ length: 1500 }, (_, i) => `k/${String(i).padStart(5, '0')}`);
      // Missing keys are not errors: only a few exist.
      for (const k of keys.slice(0, 3)) await client.put(k, Buffer.from(k));
      await client.delete(keys);
      const batches = proxy.requests.filter((r) => r.method === 'POST' && r.query.has('delete'));
      expect(batches).toHaveLength(2);
      expect(await collect(client.list('k/'))).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('aborts the multipart upload when a part fails for good, keeping the previous object', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const client = s3rverClient(proxy.endpoint, bucket, { partSize: 5 * MiB, maxAttempts: 2 });
    try {
      await client.put('snap', Buffer.from('previous'));
      proxy.rules = [(r) => (r.method === 'PUT' && r.query.get('partNumber') === '2' ? { kind: 'error', status: 403, code: 'AccessDenied' } : undefined)];
      const err = await rejection(client.put('snap', pseudoRandom(11 * MiB, 3)));
      expect(AccessDeniedError.isInstance(err), String(err)).toBe(true);
      expect(proxy.requests.some((r) => r.method === 'DELETE' && r.query.has('uploadId'))).toBe(true);
      expect(await server.pendingUploads(bucket)).toEqual([]);
      expect((await readAll(await client.open('snap'))).toString()).toBe('previous');
    } finally {
      await client.close();
    }
  });

  it('recovers when the answer to a completed CompleteMultipartUpload is lost', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const client = s3rverClient(proxy.endpoint, bucket, { partSize: 5 * MiB, maxAttempts: 3 });
    try {
      let lost = 0;
      proxy.rules = [(r) => (r.method === 'POST' && r.query.has('uploadId') && lost++ === 0 ? { kind: 'reset-after' } : undefined)];
      const body = pseudoRandom(11 * MiB, 4);
      const info = await client.put('snap', body);
      expect(info.size).toBe(body.length);
      expect(lost).toBeGreaterThan(1); // the retried Complete found no upload
      expect((await readAll(await client.open('snap'))).equals(body)).toBe(true);
    } finally {
      await client.close();
    }
  });

  it('keeps a streamed upload’s memory to a few parts', async () => {
    const proxy = await proxied({ seed: 3, rates: { delay: 0.5 } });
    const bucket = await server.newBucket();
    const partSize = 5 * MiB;
    const concurrency = 2;
    const client = s3rverClient(proxy.endpoint, bucket, { partSize, uploadConcurrency: concurrency });
    try {
      const total = 40 * MiB;
      let pulled = 0;
      let maxAhead = 0;
      async function* body() {
        for (let i = 0; pulled < total; i++) {
          maxAhead = Math.max(maxAhead, pulled - proxy.uploadedPartBytes);
          const c = Buffer.alloc(MiB, i);
          pulled += c.length;
          yield c;
        }
      }
      const info = await client.put('big', body());
      expect(info.size).toBe(total);
      // Read ahead of what the server has acknowledged: parts in flight plus the one being filled.
      expect(maxAhead).toBeLessThanOrEqual((concurrency + 1) * partSize + MiB);
      expect(maxAhead).toBeLessThan(total / 2);
    } finally {
      await client.close();
    }
  });
});

describe('S3ReplicaClient region', () => {
  it('falls back to us-east-1 when GetBucketLocation is denied, instead of failing', async () => {
    const proxy = await proxied();
    proxy.rules = [(r) => (r.method === 'GET' && r.query.has('location') ? { kind: 'error', status: 403, code: 'AccessDenied', message: 'Access Denied' } : undefined)];
    const bucket = await server.newBucket();
    const client = s3rverClient(proxy.endpoint, bucket, { region: undefined, detectRegion: true });
    try {
      await client.put('k', Buffer.from('hello'));
      expect(await client.region()).toEqual({ region: 'us-east-1', source: 'fallback' });
      expect((await readAll(await client.open('k'))).toString()).toBe('hello');
      expect(proxy.requests.filter((r) => r.query.has('location'))).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  it('takes the region from HeadBucket when GetBucketLocation is denied', async () => {
    const proxy = await proxied();
    proxy.rules = [
      (r) => (r.method === 'GET' && r.query.has('location') ? { kind: 'error', status: 403, code: 'AccessDenied' } : undefined),
      (r) => (r.method === 'HEAD' && r.path.split('/').filter(Boolean).length === 1 ? { kind: 'forward', addHeaders: { 'x-amz-bucket-region': 'eu-central-1' } } : undefined),
    ];
    const bucket = await server.newBucket();
    const client = s3rverClient(proxy.endpoint, bucket, { region: undefined, detectRegion: true });
    try {
      expect(await client.region()).toEqual({ region: 'eu-central-1', source: 'HeadBucket' });
      await client.put('k', Buffer.from('x'));
      expect(proxy.requests.at(-1)?.headers.authorization).toMatch(/\/eu-central-1\/s3\/aws4_request/);
    } finally {
      await client.close();
    }
  });

  it('uses GetBucketLocation when allowed, the environment before that, and us-east-1 with an endpoint', async () => {
    const proxy = await proxied();
    const bucket = await server.newBucket();
    const looked = s3rverClient(proxy.endpoint, bucket, { region: undefined, detectRegion: true });
    const fromEnv = s3rverClient(proxy.endpoint, bucket, { region: undefined, detectRegion: true, env: { AWS_REGION: 'ap-south-1' } });
    const fromEndpoint = s3rverClient(proxy.endpoint, bucket, { region: undefined });
    try {
      expect(await looked.region()).toEqual({ region: 'us-east-1', source: 'GetBucketLocation' });
      expect(await fromEnv.region()).toEqual({ region: 'ap-south-1', source: 'environment' });
      expect(await fromEndpoint.region()).toEqual({ region: 'us-east-1', source: 'endpoint-default' });
      expect(proxy.requests.filter((r) => r.query.has('location'))).toHaveLength(1);
    } finally {
      await Promise.all([looked.close(), fromEnv.close(), fromEndpoint.close()]);
    }
  });
});
