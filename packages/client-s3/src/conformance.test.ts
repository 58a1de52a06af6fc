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
    return { client: s3rverClient(server.endpoint, bucket), cleanup: () => server.dropBucket(bucket) };
  },
  { timeoutMs: 60_000 },
);
