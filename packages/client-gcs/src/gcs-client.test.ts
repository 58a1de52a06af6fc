import { inspect } from 'node:util';
import { AccessDeniedError, InvalidArgumentError, LstreamError, NotFoundError, TransientError, collect, isAbortError } from '@ls/core';
import { GCS_PROTOCOL, startFaultProxy, readAll, rejection } from '@ls/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emulatorClient, startGcsEmulator, type GcsEmulatorHandle } from '../test/gcs-emulator-server.js';
import { isTransientGcsError, mapGcsError } from './errors.js';
import { GcsReplicaClient, createGcsReplicaClient, parseGcsUrl } from './gcs-client.js';

const MiB = 1024 * 1024;

/** Runs `fn` with environment variables set (or removed, for undefined), restoring them after. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, val] of Object.entries(v)) {
      if (val === undefined) delete process.env[k];
      else process.env[k] = val;
    }
  };
  apply(vars);
  try {
    return await fn();
  } finally {
    apply(saved);
  }
}

let server: GcsEmulatorHandle;
beforeAll(async () => {
  server = await startGcsEmulator();
});
afterAll(async () => {
  await server?.stop();
});

describe('GcsReplicaClient options', () => {
  it('validates its options up front', () => {
    expect(() => new GcsReplicaClient({ bucket: '' })).toThrow(InvalidArgumentError);
    expect(() => new GcsReplicaClient({ bucket: 'a/b' })).toThrow(InvalidArgumentError);
    expect(() => new GcsReplicaClient({ bucket: 'b', path: 'a/../b' })).toThrow(/invalid object key/);
    expect(() => new GcsReplicaClient({ bucket: 'b', uploadChunkSize: 1000 })).toThrow(/uploadChunkSize/);
    expect(() => new GcsReplicaClient({ bucket: 'b', uploadChunkSize: 300 * 1024 })).toThrow(/multiple of 256 KiB/);
    expect(() => new GcsReplicaClient({ bucket: 'b', deleteConcurrency: 0 })).toThrow(/deleteConcurrency/);
    expect(() => new GcsReplicaClient({ bucket: 'b', retryDelayMultiplier: -1 })).toThrow(/retryDelayMultiplier/);
    // Below the SDK's own 1 s minimum delay, every resumable upload would fail.
    expect(() => new GcsReplicaClient({ bucket: 'b', maxRetryDelayMs: 999 })).toThrow(/maxRetryDelayMs must be at least 1000/);
  });

  it('strips slashes around the path and declares GCS’s capabilities', () => {
    const c = createGcsReplicaClient({ bucket: 'b', path: '/backups/db/' });
    expect(c.root).toBe('backups/db/');
    expect(new GcsReplicaClient({ bucket: 'b' }).root).toBe('');
    expect(c.type).toBe('gcs');
    expect(c.capabilities).toEqual({ listDelimiter: true, deleteMaxBatch: 1, rangeRead: true, timestampResolutionMs: 1 });
  });

  it('parses gs:// and gcs:// URLs into bucket and path', () => {
    expect(parseGcsUrl('gs://my-bucket/db/app')).toEqual({ bucket: 'my-bucket', path: 'db/app' });
    expect(parseGcsUrl('gcs://my-bucket/db/app/')).toEqual({ bucket: 'my-bucket', path: 'db/app' });
    expect(parseGcsUrl('gs://my-bucket')).toEqual({ bucket: 'my-bucket', path: '' });
    expect(() => parseGcsUrl('s3://b/p')).toThrow(InvalidArgumentError);
    expect(() => parseGcsUrl('gs:///p')).toThrow(/no bucket/);
  });

  it('talks to STORAGE_EMULATOR_HOST with only bucket and path, never looking for credentials', async () => {
    const bucket = await server.newBucket();
    // A credentials file that does not exist: any attempt to load Application Default Credentials fails.
    for (const host of [server.endpoint, server.endpoint.replace('http://', '')]) {
      await withEnv({ STORAGE_EMULATOR_HOST: host, GOOGLE_APPLICATION_CREDENTIALS: '/nonexistent/lstream-key.json', GOOGLE_CLOUD_PROJECT: undefined }, async () => {
        const c = createGcsReplicaClient({ bucket, path: 'emu' });
        try {
          expect(c.emulator).toBe(true);
          expect(c.apiEndpoint).toBe(server.endpoint);
          await c.put('k', Buffer.from('hello'));
          expect((await readAll(await c.open('k'))).toString()).toBe('hello');
          expect((await collect(c.list(''))).map((e) => e.key)).toEqual(['k']);
          await c.delete(['k']);
          expect(NotFoundError.isInstance(await rejection(c.open('k')))).toBe(true);
        } finally {
          await c.close();
        }
      });
    }
  });

  it('uses a resumable upload above resumableThreshold', async () => {
    const proxy = await startFaultProxy(server.endpoint, { protocol: GCS_PROTOCOL });
    const bucket = await server.newBucket();
    // One chunk holds the body: the emulator finalizes a resumable upload on its first PUT.
    const c = emulatorClient(proxy.endpoint, bucket, { resumableThreshold: MiB, uploadChunkSize: 4 * MiB });
    try {
      const body = Buffer.alloc(3 * MiB + 7, 7);
      async function* chunks() {
        for (let off = 0; off < body.length; off += 100_000) yield body.subarray(off, off + 100_000);
      }
      expect((await c.put('big', chunks())).size).toBe(body.length);
      expect((await c.put('small', Buffer.alloc(MiB, 1))).size).toBe(MiB);
      expect((await readAll(await c.open('big'))).equals(body)).toBe(true);
      const uploads = proxy.requests.filter((r) => r.path.startsWith('/upload/'));
      expect(uploads.map((r) => [r.method, r.query.get('uploadType')])).toEqual([
        ['POST', 'resumable'],
        ['PUT', 'resumable'],
        ['POST', 'multipart'],
      ]);
    } finally {
      await c.close();
      await proxy.close();
    }
  });

  it('rejects calls after close', async () => {
    const c = emulatorClient(server.endpoint, await server.newBucket());
    await c.close();
    const err = await rejection(c.put('k', Buffer.from('x')));
    expect(LstreamError.isInstance(err) && err.code).toBe('ECLOSED');
  });

  it('destroys a download with an AbortError when aborted mid-read', async () => {
    const c = emulatorClient(server.endpoint, await server.newBucket());
    try {
      await c.put('k', Buffer.alloc(4 * MiB, 3));
      const ac = new AbortController();
      const stream = await c.open('k', { signal: ac.signal });
      ac.abort();
      expect(isAbortError(await rejection(readAll(stream)))).toBe(true);
    } finally {
      await c.close();
    }
  });
});

describe('GCS error mapping', () => {
  const op = { permission: 'storage.objects.get', what: 'reading gs://b/k', key: 'k', notFound: true };
  const apiError = (code: number, message: string, reason?: string) =>
    Object.assign(new Error(message), { code, errors: reason ? [{ reason, message }] : [] });

  it('maps statuses and reasons to the contract’s typed errors', () => {
    expect(NotFoundError.isInstance(mapGcsError(apiError(404, 'No such object: b/k', 'notFound'), op))).toBe(true);
    const noBucket = mapGcsError(apiError(404, 'The specified bucket does not exist.', 'notFound'), op);
    expect(LstreamError.isInstance(noBucket) && noBucket.code).toBe('ENOBUCKET');
    expect(AccessDeniedError.isInstance(mapGcsError(apiError(403, 'denied', 'forbidden'), op))).toBe(true);
    expect(AccessDeniedError.isInstance(mapGcsError(apiError(401, 'Invalid Credentials', 'authError'), op))).toBe(true);
    for (const status of [408, 429, 500, 502, 503, 504]) expect(TransientError.isInstance(mapGcsError(apiError(status, 'x'), op)), String(status)).toBe(true);
    expect(TransientError.isInstance(mapGcsError(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), op))).toBe(true);
    expect(TransientError.isInstance(mapGcsError(Object.assign(new Error('network timeout at: x'), { type: 'request-timeout' }), op))).toBe(true);
    const other = mapGcsError(apiError(400, 'Invalid argument', 'invalid'), op);
    expect(LstreamError.isInstance(other) && other.code).toBe('EGCS');
    expect(isTransientGcsError(apiError(400, 'bad'))).toBe(false);
  });

  it('says where credentials come from when none are found', () => {
    const err = mapGcsError(new Error('Could not load the default credentials. Browse to https://cloud.google.com/docs/authentication'), op);
    expect(AccessDeniedError.isInstance(err)).toBe(true);
    expect((err as Error).message).toMatch(/GOOGLE_APPLICATION_CREDENTIALS/);
  });

  it('keeps tokens and keys out of messages and causes', () => {
    const token = 'ya29.a0AfH6SMBsecretsecretsecret';
    const raw = Object.assign(new Error(`request failed: Authorization: Bearer ${token}`), {
      code: 403,
      errors: [{ reason: 'forbidden', message: `Bearer ${token}` }],
      response: { status: 403, request: { headers: { Authorization: `Bearer ${token}` } } },
    });
    const err = mapGcsError(raw, op);
    expect(AccessDeniedError.isInstance(err)).toBe(true);
    expect(inspect(err, { depth: 10 })).not.toContain(token);
    expect((err as Error).message).toContain('storage.objects.get');
  });
});
