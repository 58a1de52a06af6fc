import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect, promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { AccessDeniedError, InvalidArgumentError, LstreamError, NotFoundError, TransientError, collect, isAbortError, isRetryable } from '@ls/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3RVER_KEY, randomName, s3rverClient, sdkClient, startS3rver, type S3rverHandle } from '../test/s3rver-server.js';
import { mapS3Error } from './errors.js';
import { normalizeLocationConstraint } from './region.js';
import { S3ReplicaClient, createS3ReplicaClient } from './s3-client.js';
import { readAll, rejection } from '@ls/test-support';

let server: S3rverHandle;
beforeAll(async () => {
  server = await startS3rver();
});
afterAll(async () => {
  await server?.stop();
});

describe('S3ReplicaClient options', () => {
  it('validates its options up front', () => {
    expect(() => new S3ReplicaClient({ bucket: '' })).toThrow(InvalidArgumentError);
    expect(() => new S3ReplicaClient({ bucket: 'a/b' })).toThrow(InvalidArgumentError);
    expect(() => new S3ReplicaClient({ bucket: 'b', accessKeyId: 'id' })).toThrow(/both accessKeyId and secretAccessKey/);
    expect(() => new S3ReplicaClient({ bucket: 'b', partSize: 1024 })).toThrow(/partSize/);
    expect(() => new S3ReplicaClient({ bucket: 'b', uploadConcurrency: 0 })).toThrow(/uploadConcurrency/);
    expect(() => new S3ReplicaClient({ bucket: 'b', path: 'a/../b' })).toThrow(/invalid object key/);
  });

  it('strips slashes around the path and declares S3’s capabilities', () => {
    const c = createS3ReplicaClient({ bucket: 'b', path: '/backups/db/' });
    expect(c.root).toBe('backups/db/');
    expect(new S3ReplicaClient({ bucket: 'b' }).root).toBe('');
    expect(c.type).toBe('s3');
    expect(c.capabilities).toEqual({ listDelimiter: true, deleteMaxBatch: 1000, rangeRead: true, timestampResolutionMs: 1000 });
  });

  it('picks the region as Litestream does: us-east-1 with an endpoint whatever AWS_REGION says', async () => {
    const env = { AWS_REGION: 'eu-central-1' };
    const withEndpoint = createS3ReplicaClient({ bucket: 'b', endpoint: 'http://127.0.0.1:9', env });
    expect(await withEndpoint.region()).toEqual({ region: 'us-east-1', source: 'endpoint-default' });
    const configured = createS3ReplicaClient({ bucket: 'b', endpoint: 'http://127.0.0.1:9', region: 'auto', env });
    expect(await configured.region()).toEqual({ region: 'auto', source: 'configured' });
    // AWS itself (no endpoint): the environment's region.
    const aws = createS3ReplicaClient({ bucket: 'b', env });
    expect(await aws.region()).toEqual({ region: 'eu-central-1', source: 'environment' });
    for (const c of [withEndpoint, configured, aws]) await c.close?.();
  });

  it('reads LITESTREAM_ACCESS_KEY_ID / LITESTREAM_SECRET_ACCESS_KEY when no keys are configured', async () => {
    const bucket = await server.newBucket();
    const env = { LITESTREAM_ACCESS_KEY_ID: S3RVER_KEY, LITESTREAM_SECRET_ACCESS_KEY: 'anything' };
    const c = s3rverClient(server.endpoint, bucket, { accessKeyId: undefined, secretAccessKey: undefined, env });
    const wrong = s3rverClient(server.endpoint, bucket, {
      accessKeyId: undefined,
      secretAccessKey: undefined,
      env: { LITESTREAM_ACCESS_KEY_ID: 'AKIANOTKNOWNTOS3RVER', LITESTREAM_SECRET_ACCESS_KEY: 'litestream-env-secret-value' },
    });
    try {
      await c.put('k', Buffer.from('v'));
      expect((await readAll(await c.open('k'))).toString()).toBe('v');
      const err = await rejection(wrong.put('k', Buffer.from('v')));
      expect(AccessDeniedError.isInstance(err)).toBe(true);
      expect((err as Error).message).toMatch(/LITESTREAM_ACCESS_KEY_ID/);
      expect(inspect(err, { depth: 10 })).not.toContain('litestream-env-secret-value');
    } finally {
      await Promise.all([c.close(), wrong.close()]);
    }
  });

  it('lets AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY win over LITESTREAM_* where both are set, as Litestream does', async () => {
    const bucket = await server.newBucket();
    const both = s3rverClient(server.endpoint, bucket, {
      accessKeyId: undefined,
      secretAccessKey: undefined,
      env: { LITESTREAM_ACCESS_KEY_ID: 'AKIASTALELITESTREAM', LITESTREAM_SECRET_ACCESS_KEY: 'x', AWS_ACCESS_KEY_ID: S3RVER_KEY, AWS_SECRET_ACCESS_KEY: 'y' },
    });
    // A LITESTREAM_* key fills in the one AWS variable that is missing.
    const mixed = s3rverClient(server.endpoint, bucket, {
      accessKeyId: undefined,
      secretAccessKey: undefined,
      env: { LITESTREAM_ACCESS_KEY_ID: S3RVER_KEY, AWS_SECRET_ACCESS_KEY: 'y' },
    });
    try {
      await both.put('k', Buffer.from('v'));
      await mixed.put('k2', Buffer.from('w'));
      expect((await readAll(await both.open('k'))).toString()).toBe('v');
      expect((await readAll(await mixed.open('k2'))).toString()).toBe('w');
    } finally {
      await Promise.all([both.close(), mixed.close()]);
    }
  });

  it('rejects with AccessDeniedError that says what to check, never showing the secret', async () => {
    const bucket = await server.newBucket();
    const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY';
    const c = s3rverClient(server.endpoint, bucket, { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: secret });
    try {
      const errors = [
        await rejection(c.put('k', Buffer.from('v'))),
        await rejection(c.open('k')),
        await rejection(collect(c.list(''))),
        await rejection(c.delete(['k'])),
      ];
      for (const err of errors) {
        expect(AccessDeniedError.isInstance(err), String(err)).toBe(true);
        expect(isRetryable(err)).toBe(false);
        expect((err as Error).message).toMatch(/InvalidAccessKeyId/);
        expect((err as Error).message).toMatch(/check accessKeyId/);
        expect((err as Error).cause).toBeDefined();
        for (const shown of [String(err), (err as Error).message, inspect(err, { depth: 10 }), JSON.stringify(err)]) {
          expect(shown).not.toContain(secret);
        }
      }
    } finally {
      await c.close();
    }
  });

  it('names a missing bucket as such, not as a missing object', async () => {
    const c = s3rverClient(server.endpoint, randomName('nobucket'));
    try {
      const err = await rejection(c.open('k'));
      expect(NotFoundError.isInstance(err)).toBe(false);
      expect(LstreamError.isInstance(err) && (err as LstreamError).code).toBe('ENOBUCKET');
      expect((err as Error).message).toMatch(/bucket does not exist/);
    } finally {
      await c.close();
    }
  });

  it('refuses calls once closed, and never closes an S3Client it was given', async () => {
    const bucket = await server.newBucket();
    const sdk = sdkClient(server.endpoint);
    const c = new S3ReplicaClient({ bucket, path: 'given', s3Client: sdk });
    await c.put('k', Buffer.from('v'));
    expect(await c.region()).toEqual({ region: 'us-east-1', source: 'configured' });
    await c.close();
    await expect(c.put('k', Buffer.from('v'))).rejects.toThrow(/closed/);
    await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: 'still-open', Body: Buffer.from('x') }));
    sdk.destroy();
  });
});

describe('S3ReplicaClient on s3rver', () => {
  it('skips folder markers and other keys it could not address when listing', async () => {
    const bucket = await server.newBucket();
    const c = s3rverClient(server.endpoint, bucket);
    const sdk = sdkClient(server.endpoint);
    try {
      await c.put('gen/a', Buffer.from('a'));
      await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: `${c.root}gen/`, Body: Buffer.alloc(0) }));
      await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: `${c.root}gen/b.tmp`, Body: Buffer.from('partial') }));
      expect((await collect(c.list('gen/'))).map((e) => e.key)).toEqual(['gen/a']);
    } finally {
      sdk.destroy();
      await c.close();
    }
  });

  it('pages through keys in byte order, also where a key sorts between a directory and its contents', async () => {
    const bucket = await server.newBucket();
    const c = s3rverClient(server.endpoint, bucket, { listPageSize: 2 });
    try {
      // "p/a-b" < "p/a/b" in byte order, though a file-system walk meets p/a/ first.
      const keys = ['p/a/b', 'p/a/c', 'p/a-b', 'p/a0', 'p/b/x/y', 'p/c'];
      for (const k of keys) await c.put(k, Buffer.from(k));
      expect((await collect(c.list('p/'))).map((e) => e.key)).toEqual(['p/a-b', 'p/a/b', 'p/a/c', 'p/a0', 'p/b/x/y', 'p/c']);
      expect((await collect(c.list('p/', { delimiter: '/' }))).map((e) => e.key)).toEqual(['p/a-b', 'p/a/', 'p/a0', 'p/b/', 'p/c']);
    } finally {
      await c.close();
    }
  });

  it('reads an empty range past the end as no bytes, and checks ranges', async () => {
    const bucket = await server.newBucket();
    const c = s3rverClient(server.endpoint, bucket);
    try {
      await c.put('k', Buffer.from('0123456789'));
      expect((await readAll(await c.open('k', { range: { start: 10 } }))).length).toBe(0);
      expect((await readAll(await c.open('k', { range: { start: 8, end: 100 } }))).toString()).toBe('89');
      await expect(c.open('k', { range: { start: 5, end: 2 } })).rejects.toThrow(InvalidArgumentError);
      expect(NotFoundError.isInstance(await rejection(c.open('missing', { range: { start: 0, end: 1 } })))).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('aborts a multipart put when the signal aborts between parts, leaving no upload behind', async () => {
    const bucket = await server.newBucket();
    const c = s3rverClient(server.endpoint, bucket, { partSize: 5 * 1024 * 1024 });
    try {
      const ac = new AbortController();
      async function* body() {
        for (let i = 0; i < 4; i++) yield Buffer.alloc(5 * 1024 * 1024, i);
        ac.abort();
        yield Buffer.alloc(10);
      }
      const err = await rejection(c.put('k', body(), { signal: ac.signal }));
      expect(isAbortError(err), String(err)).toBe(true);
      expect(await server.pendingUploads(bucket)).toEqual([]);
      expect(await collect(c.list(''))).toEqual([]);
    } finally {
      await c.close();
    }
  });

  it('rejects with the body’s own error when it fails mid-multipart, aborting the upload', async () => {
    const bucket = await server.newBucket();
    const c = s3rverClient(server.endpoint, bucket, { partSize: 5 * 1024 * 1024 });
    try {
      await c.put('k', Buffer.from('previous'));
      const boom = new Error('producer failed');
      async function* body() {
        for (let i = 0; i < 3; i++) yield Buffer.alloc(4 * 1024 * 1024, i);
        throw boom;
      }
      expect(await rejection(c.put('k', body()))).toBe(boom);
      expect(await server.pendingUploads(bucket)).toEqual([]);
      expect((await readAll(await c.open('k'))).toString()).toBe('previous');
    } finally {
      await c.close();
    }
  });

  it('connects to a TLS endpoint with a self-signed certificate only with skipVerify', async (ctx) => {
    const dir = await mkdtemp(join(tmpdir(), 'lstream-tls-'));
    try {
      try {
        await promisify(execFile)('openssl', [
          'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
          '-addext', 'subjectAltName=IP:127.0.0.1',
          '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
        ]);
      } catch (err) {
        ctx.skip(`openssl is needed to make a self-signed certificate: ${(err as Error).message}`);
      }
      const tls = await startS3rver({ tls: { key: await readFile(join(dir, 'key.pem'), 'utf8'), cert: await readFile(join(dir, 'cert.pem'), 'utf8') } });
      const bucket = await tls.newBucket();
      const lax = s3rverClient(tls.endpoint, bucket, { skipVerify: true });
      const strict = s3rverClient(tls.endpoint, bucket, { maxAttempts: 1 });
      try {
        await lax.put('k', Buffer.from('over tls'));
        expect((await readAll(await lax.open('k'))).toString()).toBe('over tls');
        const err = await rejection(strict.open('k'));
        expect(String(err)).toMatch(/self[- ]signed|certificate/i);
      } finally {
        await Promise.all([lax.close(), strict.close()]);
        await tls.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('S3 error mapping', () => {
  const op = { action: 's3:GetObject', what: 'reading s3://b/k', key: 'k', notFound: true };
  const sdkError = (name: string, status?: number, extra: object = {}) =>
    Object.assign(new Error(`${name} message`), { name, $metadata: status === undefined ? {} : { httpStatusCode: status }, ...extra });

  it('maps throttling, 5xx, timeouts and dropped connections to TransientError', () => {
    for (const err of [
      sdkError('SlowDown', 503),
      sdkError('InternalError', 500),
      sdkError('TooManyRequests', 429),
      sdkError('BadGateway', 502),
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
      Object.assign(new Error('timed out'), { name: 'TimeoutError' }),
      Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' }),
    ]) {
      const mapped = mapS3Error(err, op, []);
      expect(TransientError.isInstance(mapped), String(err)).toBe(true);
      expect((mapped as Error).cause).toBe(err);
    }
  });

  it('maps 403s to AccessDeniedError, 404s of objects to NotFoundError, and redacts secrets', () => {
    for (const name of ['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'Forbidden']) {
      expect(AccessDeniedError.isInstance(mapS3Error(sdkError(name, 403), op, [])), name).toBe(true);
    }
    expect(AccessDeniedError.isInstance(mapS3Error(Object.assign(new Error('Could not load credentials'), { name: 'CredentialsProviderError' }), op, []))).toBe(true);
    expect(NotFoundError.isInstance(mapS3Error(sdkError('NoSuchKey', 404), op, []))).toBe(true);
    expect(NotFoundError.isInstance(mapS3Error(sdkError('NotFound', 404), op, []))).toBe(true);
    expect(NotFoundError.isInstance(mapS3Error(sdkError('NoSuchKey', 404), { ...op, notFound: false }, []))).toBe(false);
    const leaky = Object.assign(new Error('bad signature for secret s3cr3t-VALUE-xyz'), { name: 'SignatureDoesNotMatch', $metadata: { httpStatusCode: 403 } });
    expect((mapS3Error(leaky, op, ['s3cr3t-VALUE-xyz']) as Error).message).not.toContain('s3cr3t-VALUE-xyz');
    const ac = new AbortController();
    ac.abort();
    expect(isAbortError(mapS3Error(sdkError('InternalError', 500), op, [], ac.signal))).toBe(true);
  });

  it('normalizes GetBucketLocation answers', () => {
    expect(normalizeLocationConstraint(undefined)).toBe('us-east-1');
    expect(normalizeLocationConstraint('')).toBe('us-east-1');
    expect(normalizeLocationConstraint('EU')).toBe('eu-west-1');
    expect(normalizeLocationConstraint('ap-southeast-2')).toBe('ap-southeast-2');
  });
});
