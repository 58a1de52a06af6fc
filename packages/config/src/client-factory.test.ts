import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collect, type ReplicaClient } from '@ls/core';
import { afterAll, describe, expect, it } from 'vitest';
import { createReplicaClient, registerClientFactory } from './client-factory.js';
import { ConfigError } from './config-error.js';
import { parseConfig } from './parse-config.js';
import type { ReplicaConfig } from './config-types.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

describe('createReplicaClient', () => {
  it('builds a file client that can put and list objects', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lstream-config-client-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const config = parseConfig(`dbs:\n  - path: /data/app.db\n    replicas:\n      - url: file://${join(dir, 'replica')}\n`, { env: {} });
    const replica = config.dbs[0]?.replicas[0];
    if (!replica) throw new Error('no replica');
    const client = await createReplicaClient(replica);
    expect(client.type).toBe('file');
    const info = await client.put('generations/0000000000000001/snapshots/00000000.snapshot.lz4', Buffer.from('hello'));
    expect(info.size).toBe(5);
    const listed = await collect(client.list('generations/'));
    expect(listed.map((e) => e.key)).toEqual(['generations/0000000000000001/snapshots/00000000.snapshot.lz4']);
    await client.close?.();
  });

  it('rejects a file replica without a path', async () => {
    await expect(createReplicaClient({ type: 'file', name: 'file', options: {} })).rejects.toBeInstanceOf(ConfigError);
  });

  it('builds s3 and gcs clients from their packages, and names a missing bucket or an unknown type', async () => {
    const s3 = await createReplicaClient({ type: 's3', name: 's3', bucket: 'b', path: 'p', region: 'us-east-1', options: {} });
    expect(s3.type).toBe('s3');
    await s3.close?.();
    const gcs = await createReplicaClient({ type: 'gcs', name: 'gcs', bucket: 'b', path: 'p', options: {} });
    expect(gcs.type).toBe('gcs');
    await gcs.close?.();
    const err = await createReplicaClient({ type: 's3', name: 'backup', options: {}, line: 7 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problem).toBe("s3 replica 'backup' has no bucket");
    expect((err as ConfigError).line).toBe(7);
    await expect(createReplicaClient({ type: 'ftp', name: 'ftp', options: {} })).rejects.toBeInstanceOf(ConfigError);
  });

  it('uses a registered factory, sync or async', async () => {
    const fake = { type: 'memtest' } as unknown as ReplicaClient;
    const seen: ReplicaConfig[] = [];
    registerClientFactory('memtest', (r) => {
      seen.push(r);
      return fake;
    });
    registerClientFactory('memtest-async', async () => fake);
    const replica: ReplicaConfig = { type: 'memtest', name: 'm', options: {} };
    expect(await createReplicaClient(replica)).toBe(fake);
    expect(seen).toEqual([replica]);
    expect(await createReplicaClient({ ...replica, type: 'memtest-async' })).toBe(fake);
  });
});
