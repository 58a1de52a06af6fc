import { describeReplicaClientConformance } from '@ls/conformance';
import { afterAll, beforeAll } from 'vitest';
import { s3rverClient, startS3rver, type S3rverHandle } from '../test/s3rver-server.js';

let server: S3rverHandle;
beforeAll(async () => {
  server = await startS3rver();
});
afterAll(async () => {
  await server?.stop();
});

describeReplicaClientConformance(
  's3 (s3rver)',
  async () => {
    const bucket = await server.newBucket();
    const client = s3rverClient(server.endpoint, bucket);
    return { client, cleanup: () => server.dropBucket(bucket), second: async () => s3rverClient(server.endpoint, bucket, { path: client.root.replace(/\/$/, '') }) };
  },
  { timeoutMs: 60_000 },
);
