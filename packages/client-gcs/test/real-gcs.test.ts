import { randomBytes } from 'node:crypto';
import { describeReplicaClientConformance } from '@ls/conformance';
import { collect } from '@ls/core';
import { describe, expect, it } from 'vitest';
import { GcsReplicaClient, type GcsReplicaClientOptions } from '../src/gcs-client.js';
import { readAll } from '@ls/test-support';

// Runs only against a real bucket: LSTREAM_TEST_GCS_BUCKET, with credentials from Application Default
// Credentials (GOOGLE_APPLICATION_CREDENTIALS naming a service-account key file, or
// `gcloud auth application-default login`); LSTREAM_TEST_GCS_PROJECT optionally. The principal needs
// storage.objects.{create,get,list,delete} on the bucket (roles/storage.objectAdmin). Every test works
// under a random prefix and deletes what it wrote. STORAGE_EMULATOR_HOST must not be set.
const bucket = process.env.LSTREAM_TEST_GCS_BUCKET;
const SKIP_REASON = 'set LSTREAM_TEST_GCS_BUCKET (and GOOGLE_APPLICATION_CREDENTIALS or other Application Default Credentials) to run the real-GCS tests';

function realClient(path: string, options: Partial<GcsReplicaClientOptions> = {}): GcsReplicaClient {
  return new GcsReplicaClient({ bucket: bucket!, path, projectId: process.env.LSTREAM_TEST_GCS_PROJECT, ...options });
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

if (!bucket || process.env.STORAGE_EMULATOR_HOST) {
  describe('GcsReplicaClient on real GCS', () => {
    it('is skipped', (ctx) => ctx.skip(bucket ? 'unset STORAGE_EMULATOR_HOST to run the real-GCS tests' : SKIP_REASON));
  });
} else {
  const base = `lstream-test-${randomBytes(6).toString('hex')}`;

  describeReplicaClientConformance(
    `gcs (real bucket ${bucket})`,
    async () => {
      const path = `${base}/${randomBytes(6).toString('hex')}`;
      return { client: realClient(path), cleanup: () => wipe(path), second: async () => realClient(path) };
    },
    { largeBodyBytes: 24 * 1024 * 1024, timeoutMs: 300_000 },
  );

  describe(`GcsReplicaClient on real bucket ${bucket}`, () => {
    it('uploads in several resumable chunks and reads the bytes back', { timeout: 300_000 }, async () => {
      const path = `${base}/${randomBytes(6).toString('hex')}`;
      const c = realClient(path, { resumableThreshold: 256 * 1024, uploadChunkSize: 256 * 1024 });
      try {
        const body = randomBytes(3 * 1024 * 1024 + 17);
        async function* chunks() {
          for (let off = 0; off < body.length; off += 100_003) yield body.subarray(off, off + 100_003);
        }
        expect((await c.put('multi', chunks())).size).toBe(body.length);
        expect((await readAll(await c.open('multi'))).equals(body)).toBe(true);
      } finally {
        await c.close();
        await wipe(path);
      }
    });
  });
}
