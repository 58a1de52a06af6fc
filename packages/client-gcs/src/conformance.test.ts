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
    return { client: emulatorClient(server.endpoint, bucket), cleanup: () => server.dropBucket(bucket) };
  },
  { timeoutMs: 60_000 },
);
