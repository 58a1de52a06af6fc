// `lstream replicate` serves Prometheus metrics on the config's `addr`, as Litestream does.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLstream, startWriter, tempDir, write } from './helpers.js';

let dir: string;
let cleanup: () => void;
beforeAll(() => ({ dir, cleanup } = tempDir('lstream-metrics-')));
afterAll(() => cleanup());

/** The value of `name` for database `db` in a Prometheus text exposition. */
function value(text: string, name: string, db: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`db="${db}"`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('lstream replicate with addr', () => {
  it('serves /metrics whose counters move as another process commits', async () => {
    const db = join(dir, 'm.db');
    const configPath = join(dir, 'm.yml');
    writeFileSync(configPath, `addr: "127.0.0.1:0"\ndbs:\n  - path: ${db}\n    replicas:\n      - url: file://${join(dir, 'm-replica')}\n        sync-interval: 0s\n`);
    write(db, ['--rows', '10']);
    const rep = startLstream(['replicate', '-config', configPath]);
    try {
      const line = await rep.waitFor(/msg="serving metrics"/);
      const url = /url=(\S+)/.exec(line)![1]!;
      await rep.waitFor(/msg="replica synced"/);
      const scrape = async () => {
        const res = await fetch(url);
        expect(res.status).toBe(200);
        return res.text();
      };
      const first = await scrape();
      const syncs0 = value(first, 'litestream_sync_count', db) ?? 0;
      const writer = startWriter(db, ['--rows', '200', '--batch', '2', '--interval-ms', '5']);
      expect(await writer.exited).toBe(0);
      let text = await scrape();
      // The writer's commits are counted once the sync that copied them has run; poll for it.
      for (let i = 0; i < 100 && (value(text, 'litestream_sync_count', db) ?? 0) <= syncs0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        text = await scrape();
      }
      expect(value(text, 'litestream_sync_count', db)).toBeGreaterThan(syncs0);
      expect(value(text, 'litestream_replica_wal_bytes', db)).toBeGreaterThan(0);
      expect(await rep.stop('SIGTERM')).toBe(0);
    } finally {
      await rep.stop('SIGKILL');
    }
  });
});
