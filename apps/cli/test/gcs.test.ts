// End to end against GCS: the real `lstream` binary replicates to firebase-tools' Cloud Storage
// emulator (the GCS JSON API, in this process; STORAGE_EMULATOR_HOST points the client at it) through
// a config file, a gs:// URL, and a proxy that injects faults; every restore must give back the
// source database byte for byte.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GCS_PROTOCOL, startFaultProxy, startGcsEmulator, type FaultProxy, type GcsEmulatorHandle } from '@ls/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dump, lstreamAsync, sha256, sleep, startLstream, startWriter, tempDir, write } from './helpers.js';

let dir: string;
let cleanup: () => void;
let gcs: GcsEmulatorHandle;
let proxy: FaultProxy | undefined;
beforeAll(async () => {
  ({ dir, cleanup } = tempDir('lstream-gcs-e2e-'));
  gcs = await startGcsEmulator();
});
afterAll(async () => {
  await proxy?.close();
  await gcs?.stop();
  cleanup();
});

function gcsConfig(name: string, bucket: string, syncInterval = '100ms'): { db: string; configPath: string } {
  const db = join(dir, `${name}.db`);
  const configPath = join(dir, `${name}.yml`);
  writeFileSync(
    configPath,
    `dbs:
  - path: ${db}
    min-checkpoint-page-count: 40
    replicas:
      - type: gcs
        bucket: ${bucket}
        path: backups/${name}
        sync-interval: ${syncInterval}
`,
  );
  return { db, configPath };
}

describe('lstream with a GCS replica', () => {
  it('replicates through a config file, lists generations, snapshots and WAL, and restores byte for byte', async () => {
    const bucket = await gcs.newBucket();
    const { db, configPath } = gcsConfig('cfg', bucket);
    const env = { STORAGE_EMULATOR_HOST: gcs.endpoint };
    write(db, ['--rows', '100']);
    const rep = startLstream(['replicate', '-config', configPath], env);
    await rep.waitFor(/msg="replica synced"/);
    const writer = startWriter(db, ['--rows', '3000', '--batch', '10', '--size', '300', '--interval-ms', '2']);
    expect(await writer.exited).toBe(0);
    expect(await rep.stop('SIGTERM')).toBe(0);

    const out = join(dir, 'cfg-restored.db');
    const r = await lstreamAsync(['restore', '-config', configPath, '-o', out, '-integrity-check', db], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(dump(out).integrity).toBe('ok');
    expect(dump(out).rows).toEqual(dump(db).rows);
    expect(dump(out).rows.length).toBe(3100);
    expect(sha256(out)).toBe(sha256(db));

    const gens = await lstreamAsync(['generations', '-config', configPath, '--json', db], { env });
    expect(gens.code).toBe(0);
    const generations = JSON.parse(gens.stdout) as { generation: string }[];
    expect(generations).toHaveLength(1);
    const snaps = await lstreamAsync(['snapshots', '-config', configPath, '--json', db], { env });
    const snapshots = JSON.parse(snaps.stdout) as { generation: string; index: number }[];
    expect(snapshots).toHaveLength(1);
    expect(snapshots[0]!.generation).toBe(generations[0]!.generation);
    const wal = await lstreamAsync(['wal', '-config', configPath, '--json', db], { env });
    const segs = JSON.parse(wal.stdout) as { generation: string; index: number; offset: number }[];
    expect(segs.length).toBeGreaterThan(3);
    expect(segs[0]).toMatchObject({ generation: generations[0]!.generation, index: snapshots[0]!.index, offset: 0 });
  });

  it('replicates to a gs:// URL and restores from a gcs:// URL of the same place', async () => {
    const bucket = await gcs.newBucket();
    const db = join(dir, 'url.db');
    const env = { STORAGE_EMULATOR_HOST: gcs.endpoint };
    write(db, ['--rows', '200']);
    const rep = startLstream(['replicate', db, `gs://${bucket}/apps/url-db`], env);
    await rep.waitFor(/msg="replica synced"/);
    const writer = startWriter(db, ['--rows', '500', '--batch', '5', '--size', '200']);
    expect(await writer.exited).toBe(0);
    expect(await rep.stop('SIGINT')).toBe(0);

    const out = join(dir, 'url-restored.db');
    const r = await lstreamAsync(['restore', '-o', out, `gcs://${bucket}/apps/url-db`], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(dump(out).rows).toEqual(dump(db).rows);
    expect(sha256(out)).toBe(sha256(db));
  });

  it('stops a restore on SIGINT, removes what it wrote, and lets the next restore run', async () => {
    const bucket = await gcs.newBucket();
    const { db, configPath } = gcsConfig('sigint', bucket);
    const env = { STORAGE_EMULATOR_HOST: gcs.endpoint };
    write(db, ['--rows', '100']);
    const rep = startLstream(['replicate', '-config', configPath], env);
    await rep.waitFor(/msg="replica synced"/);
    const writer = startWriter(db, ['--rows', '400', '--batch', '10', '--size', '300', '--interval-ms', '2']);
    expect(await writer.exited).toBe(0);
    expect(await rep.stop('SIGTERM')).toBe(0);

    // Downloads of WAL segments hang: the restore has written the snapshot to <out>.tmp and waits.
    const slow = await startFaultProxy(gcs.endpoint, { protocol: GCS_PROTOCOL });
    let held = 0;
    slow.rules.push((req) => {
      if (req.query.get('alt') !== 'media' || !decodeURIComponent(req.path).includes('/wal/')) return undefined;
      held++;
      return { kind: 'delay', ms: 60_000 };
    });
    const out = join(dir, 'sigint-restored', 'app.db');
    const restoring = startLstream(['restore', '-config', configPath, '-o', out, db], { STORAGE_EMULATOR_HOST: slow.endpoint });
    try {
      // Signalled once it waits for a held segment download, with the snapshot in <out>.tmp.
      const deadline = Date.now() + 30_000;
      while (held === 0 && restoring.child.exitCode === null && Date.now() < deadline) await sleep(10);
      expect(held, `no segment download was held; lstream said: ${restoring.stderr}`).toBeGreaterThan(0);
      expect(existsSync(`${out}.tmp`)).toBe(true);
      const code = await Promise.race([restoring.stop('SIGINT'), sleep(20_000).then(() => 'still running 20 s after SIGINT')]);
      expect(code, restoring.stderr).toBe(130);
      expect(restoring.stderr).toContain('SIGINT: stopping the restore');
      // Nothing is left: not the file, nor the directory the restore made for it.
      expect(existsSync(join(dir, 'sigint-restored'))).toBe(false);
    } finally {
      if (restoring.child.exitCode === null) restoring.child.kill('SIGKILL');
      await slow.close();
    }
    const r = await lstreamAsync(['restore', '-config', configPath, '-o', out, db], { env });
    expect(r.code).toBe(0);
    expect(dump(out).rows).toEqual(dump(db).rows);
  });

  it('keeps replicating through 5% server errors, connection resets and 2 s delays, losing nothing', async () => {
    const bucket = await gcs.newBucket();
    proxy = await startFaultProxy(gcs.endpoint, {
      protocol: GCS_PROTOCOL,
      seed: 11,
      rates: { serverError: 0.05, resetBefore: 0.01, resetAfter: 0.01, truncate: 0.02, stall: 0.02, stallMs: 2000 },
    });
    // Every commit is shipped on its own, so hundreds of requests meet the faults.
    const { db, configPath } = gcsConfig('faults', bucket, '0s');
    const env = { STORAGE_EMULATOR_HOST: proxy.endpoint };
    write(db, ['--rows', '50']);
    const rep = startLstream(['replicate', '-config', configPath], env);
    await rep.waitFor(/msg="replica synced"/, 60_000);
    const writer = startWriter(db, ['--rows', '1200', '--batch', '4', '--size', '500', '--interval-ms', '25']);
    expect(await writer.exited).toBe(0);
    expect(await rep.stop('SIGTERM')).toBe(0);
    // Faults really happened (the seeded mix over ~100 requests injects several).
    expect(proxy.requests.length).toBeGreaterThan(60);
    expect(Object.values(proxy.injected).reduce((a, b) => a + b, 0)).toBeGreaterThan(1);

    const out = join(dir, 'faults-restored.db');
    const r = await lstreamAsync(['restore', '-config', configPath, '-o', out, db], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(dump(out).rows.length).toBe(1250);
    expect(sha256(out)).toBe(sha256(db));
  }, 180_000);
});
