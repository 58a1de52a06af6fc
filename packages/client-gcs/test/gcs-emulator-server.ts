import { randomName } from '@ls/test-support';
import { GcsReplicaClient, type GcsReplicaClientOptions } from '../src/gcs-client.js';

export { startGcsEmulator, type GcsEmulatorHandle } from '@ls/test-support';

/** Creates a GcsReplicaClient on `bucket` of the emulator (or a proxy in front of it) under a random prefix. */
export function emulatorClient(endpoint: string, bucket: string, options: Partial<GcsReplicaClientOptions> = {}): GcsReplicaClient {
  return new GcsReplicaClient({ bucket, path: randomName('replica'), apiEndpoint: endpoint, ...options });
}
