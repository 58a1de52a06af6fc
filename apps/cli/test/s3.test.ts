// End to end against S3: the real `lstream` binary replicates to s3rver (a real S3 protocol server,
// patched: see patches/) through a config file, an s3:// URL, and a proxy that injects faults; every
// restore must give back the source database byte for byte.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFaultProxy, startS3rver, S3RVER_KEY, type FaultProxy, type S3rverHandle } from '@ls/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dump, lstreamAsync, sha256, startLstream, startWriter, tempDir, write } from './helpers.js';

let dir: string;
let cleanup: () => void;
let s3: S3rverHandle;
let proxy: FaultProxy | undefined;
beforeAll(async () => {
  ({ dir, cleanup } = tempDir('lstream-s3-e2e-'));
  s3 = await startS3rver();
});
afterAll(async () => {
  await proxy?.close();
  await s3?.stop();
  cleanup();
});

const keys = { LITESTREAM_ACCESS_KEY_ID: S3RVER_KEY, LITESTREAM_SECRET_ACCESS_KEY: S3RVER_KEY };

function s3Config(name: string, bucket: string, endpoint: string, syncInterval = '100ms'): { db: string; configPath: string } {
  const db = join(dir, `${name}.db`);
  const configPath = join(dir, `${name}.yml`);
  writeFileSync(
    configPath,
    `dbs:
  - path: ${db}
    min-checkpoint-page-count: 40
    replicas:
      - type: s3
        bucket: ${bucket}
        path: backups/${name}
        endpoint: ${endpoint}
        region: us-east-1
        force-path-style: true
        access-key-id: ${S3RVER_KEY}
        secret-access-key: \${TEST_S3_SECRET}
        sync-interval: ${syncInterval}
`,
  );
  return { db, configPath };
}

describe('lstream with an S3 replica', () => {
  it('replicates through a config file, lists generations, snapshots and WAL, and restores byte for byte', async () => {
    const bucket = await s3.newBucket();
    const { db, configPath } = s3Config('cfg', bucket, s3.endpoint);
    const env = { TEST_S3_SECRET: S3RVER_KEY };
    write(db, ['--rows', '100']);
    const rep = startLstream(['replicate', '-config', configPath], env);
    await rep.waitFor(/msg="replica synced"/);
    const writer = startWriter(db, ['--rows', '3000', '--batch', '10', '--size', '300', '--interval-ms', '2']);
    expect(await writer.exited).toBe(0);
    expect(await rep.stop('SIGTERM')).toBe(0);
    // The secret never reaches the log.
    expect(rep.lines.join('\n') + rep.stderr).not.toContain(`secret-access-key: ${S3RVER_KEY}`);

    const out = join(dir, 'cfg-restored.db');
    const r = await lstreamAsync(['restore', '-config', configPath, '-o', out, '-integrity-check', db], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(dump(out).integrity).toBe('ok');
    expect(dump(out).rows).toEqual(dump(db).rows);
    expect(dump(out).rows.length).toBe(3100);
    // The final sync checkpointed everything into the database file, so the files are equal.
    expect(sha256(out)).toBe(sha256(db));

    const gens = await lstreamAsync(['generations', '-config', configPath, '--json', db], { env });
    expect(gens.code).toBe(0);
    const generations = JSON.parse(gens.stdout) as { generation: string }[];
    expect(generations).toHaveLength(1);
    const snaps = await lstreamAsync(['snapshots', '-config', configPath, '--json', db], { env });
    const snapshots = JSON.parse(snaps.stdout) as { generation: string; index: number; size: number }[];
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0]!.generation).toBe(generations[0]!.generation);
    const wal = await lstreamAsync(['wal', '-config', configPath, '--json', db], { env });
    const segs = JSON.parse(wal.stdout) as { generation: string; index: number; offset: number }[];
    expect(segs.length).toBeGreaterThan(3);
    expect(segs.every((s) => s.generation === generations[0]!.generation)).toBe(true);
    // The WAL chain starts where the snapshot is.
    expect(segs[0]).toMatchObject({ index: snapshots[0]!.index, offset: 0 });
  });

  it('lists the replicas it can when one fails, names the one that failed, and exits 1', async () => {
    const db = join(dir, 'partial.db');
    const good = join(dir, 'partial-replica');
    write(db, ['--rows', '20']);
    expect((await lstreamAsync(['replicate', '-exec', 'true', db, `file://${good}`])).code).toBe(0);
    const configPath = join(dir, 'partial.yml');
    writeFileSync(
      configPath,
      `dbs:
  - path: ${db}
    replicas:
      - name: local
        url: file://${good}
      - name: missing-bucket
        type: s3
        bucket: no-such-bucket-for-listing
        endpoint: ${s3.endpoint}
        region: us-east-1
        force-path-style: true
        access-key-id: ${S3RVER_KEY}
        secret-access-key: ${S3RVER_KEY}
`,
    );
    for (const command of ['generations', 'snapshots', 'wal']) {
      const r = await lstreamAsync([command, '-config', configPath, '--json', db]);
      expect(r.code, command).toBe(1);
      const rows = JSON.parse(r.stdout) as { name?: string; replica?: string }[];
      expect(rows.length, command).toBeGreaterThan(0);
      expect(rows.every((x) => (x.name ?? x.replica) === 'local'), command).toBe(true);
      expect(r.stderr, command).toMatch(new RegExp(`^lstream ${command}: replica missing-bucket: .*bucket`, 'im'));
      expect(r.stderr).not.toContain(S3RVER_KEY);
    }
  });

  it('replicates to an s3:// URL with credentials from LITESTREAM_* variables, and restores from the URL', async () => {
    const bucket = await s3.newBucket();
    const db = join(dir, 'url.db');
    // Litestream's host rule: bucket.localhost:port is a local server, path-style, over http.
    const url = `s3://${bucket}.localhost:${s3.port}/apps/url-db`;
    write(db, ['--rows', '200']);
    const rep = startLstream(['replicate', db, url], keys);
    await rep.waitFor(/msg="replica synced"/);
    const writer = startWriter(db, ['--rows', '500', '--batch', '5', '--size', '200']);
    expect(await writer.exited).toBe(0);
    expect(await rep.stop('SIGINT')).toBe(0);

    const out = join(dir, 'url-restored.db');
    const r = await lstreamAsync(['restore', '-o', out, url], { env: keys });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(dump(out).rows).toEqual(dump(db).rows);
    expect(sha256(out)).toBe(sha256(db));

    const wal = await lstreamAsync(['wal', url], { env: keys });
    expect(wal.code).toBe(0);
    expect(wal.stdout.split('\n')[0]).toMatch(/^replica\s+generation\s+index\s+offset\s+size\s+created$/);
  });

  it('says what to check when the bucket does not exist, and leaves nothing at the output path', async () => {
    const out = join(dir, 'missing-restored.db');
    const r = await lstreamAsync(['restore', '-o', out, `s3://no-such-bucket-here.localhost:${s3.port}/x`], { env: keys });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/bucket does not exist|no backups|not found/i);
    expect(r.stderr).not.toContain(S3RVER_KEY.repeat(1) + ':');
  });

  it('never prints a credential, even when the storage quotes it back in an error', async () => {
    const bucket = await s3.newBucket();
    const secret = 'sEcReT-value-Never-Printed-42';
    const leaky = await startFaultProxy(s3.endpoint, {});
    try {
      leaky.rules = [() => ({ kind: 'error', status: 403, code: 'AccessDenied', message: `request signed with ${secret} was refused` })];
      const { db, configPath } = s3Config('leaky', bucket, leaky.endpoint);
      const out = join(dir, 'leaky-restored.db');
      const viaConfig = await lstreamAsync(['restore', '-config', configPath, '-o', out, db], { env: { TEST_S3_SECRET: secret } });
      expect(viaConfig.code).not.toBe(0);
      expect(viaConfig.stderr).toMatch(/access denied/i);
      expect(viaConfig.stdout + viaConfig.stderr).not.toContain(secret);
      const url = `s3://${bucket}.localhost:${new URL(leaky.endpoint).port}/x`;
      const viaEnv = await lstreamAsync(['snapshots', url], { env: { LITESTREAM_ACCESS_KEY_ID: S3RVER_KEY, LITESTREAM_SECRET_ACCESS_KEY: secret } });
      expect(viaEnv.code).not.toBe(0);
      expect(viaEnv.stdout + viaEnv.stderr).not.toContain(secret);
      expect(existsSync(out)).toBe(false);
    } finally {
      await leaky.close();
    }
  });

  it('keeps replicating through 5% server errors, connection resets and 2 s delays, losing nothing', async () => {
    const bucket = await s3.newBucket();
    proxy = await startFaultProxy(s3.endpoint, {
      seed: 7,
      rates: { serverError: 0.05, resetBefore: 0.01, resetAfter: 0.01, truncate: 0.02, stall: 0.02, stallMs: 2000 },
    });
    // Every commit is shipped on its own, so hundreds of requests meet the faults.
    const { db, configPath } = s3Config('faults', bucket, proxy.endpoint, '0s');
    const env = { TEST_S3_SECRET: S3RVER_KEY };
    write(db, ['--rows', '50']);
    const rep = startLstream(['replicate', '-config', configPath], env);
    await rep.waitFor(/msg="replica synced"/, 60_000);
    const writer = startWriter(db, ['--rows', '1200', '--batch', '4', '--size', '500', '--interval-ms', '25']);
    expect(await writer.exited).toBe(0);
    expect(await rep.stop('SIGTERM')).toBe(0);
    // Faults really happened (the seeded mix over ~100 requests injects several).
    expect(proxy.requests.length).toBeGreaterThan(60);
    expect(Object.values(proxy.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(1);

    // The restore goes through the same faults.
    const out = join(dir, 'faults-restored.db');
    const r = await lstreamAsync(['restore', '-config', configPath, '-o', out, db], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(dump(out).rows.length).toBe(1250);
    expect(sha256(out)).toBe(sha256(db));
  }, 180_000);
});
