import { describeReplicaClientConformance } from '@ls/conformance';
import { afterAll, beforeAll } from 'vitest';
import { emulatorClient, startGcsEmulator, type GcsEmulatorHandle } from '../test/gcs-emulator-server.js';

let server: GcsEmulatorHandle;
beforeAll(async () => {
  server = await startGcsEmulator();
});
afterAll(async () => {
  await server?.stop();
});

describeReplicaClientConformance(
  'gcs (firebase-tools storage emulator)',
  async () => {
    const bucket = await server.newBucket();
    const client = emulatorClient(server.endpoint, bucket);
    return { client, cleanup: () => server.dropBucket(bucket), second: async () => emulatorClient(server.endpoint, bucket, { path: client.root.replace(/\/$/, '') }) };
  },
  { timeoutMs: 60_000 },
);
