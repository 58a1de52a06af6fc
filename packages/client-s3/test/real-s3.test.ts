import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { describeReplicaClientConformance } from '@ls/conformance';
import { collect } from '@ls/core';
import { describe, expect, it } from 'vitest';
import { S3ReplicaClient } from '../src/s3-client.js';

// Runs only against a real bucket: LSTREAM_TEST_S3_BUCKET, plus the usual AWS credentials and
// (optionally) AWS_REGION; LSTREAM_TEST_S3_ENDPOINT for an S3-compatible service. Every test works
// under a random prefix and deletes what it wrote.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const bucket = process.env.LSTREAM_TEST_S3_BUCKET;
const endpoint = process.env.LSTREAM_TEST_S3_ENDPOINT;
const SKIP_REASON = 'set LSTREAM_TEST_S3_BUCKET (with AWS credentials, and AWS_REGION or GetBucketLocation permission) to run the real-S3 tests';

function realClient(path: string): S3ReplicaClient {
  return new S3ReplicaClient({
    bucket: bucket!,
    path,
    ...(endpoint ? { endpoint, forcePathStyle: process.env.LSTREAM_TEST_S3_FORCE_PATH_STYLE === 'true' } : {}),
  });
}

async function wipe(path: string): Promise<void> {
  const c = realClient(path);
  try {
    const keys = (await collect(c.list(''))).map((e) => e.key);
    if (keys.length > 0) await c.delete(keys);
  } finally {
    await c.close();
  }
}

if (!bucket) {
  describe('S3ReplicaClient on real S3', () => {
    it('is skipped', (ctx) => ctx.skip(SKIP_REASON));
  });
} else {
  const base = `lstream-test-${randomBytes(6).toString('hex')}`;

  describeReplicaClientConformance(
    `s3 (real bucket ${bucket})`,
    async () => {
      const path = `${base}/${randomBytes(6).toString('hex')}`;
      return { client: realClient(path), cleanup: () => wipe(path), second: async () => realClient(path) };
    },
    { largeBodyBytes: 24 * 1024 * 1024, timeoutMs: 300_000 },
  );

  describe('S3ReplicaClient on real S3', () => {
    it('finds the bucket region and round-trips a multipart body', { timeout: 300_000 }, async () => {
      const path = `${base}/region`;
      const c = realClient(path);
      try {
        const { region, source } = await c.region();
        expect(region).toMatch(/^[a-z0-9-]+$/);
        expect(source).not.toBe('endpoint-default');
        const body = randomBytes(17 * 1024 * 1024);
        const info = await c.put('big', body);
        expect(info.size).toBe(body.length);
        const parts: Buffer[] = [];
        for await (const chunk of (await c.open('big')) as Readable) parts.push(chunk as Buffer);
        expect(Buffer.concat(parts).equals(body)).toBe(true);
      } finally {
        await c.close();
        await wipe(path);
      }
    });
  });
}
