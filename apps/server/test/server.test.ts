// End to end: the real `lstream-server` binary replicates databases written by another process and
// is observed the way an operator would: /metrics, /readyz, the status API over real HTTP, signals,
// and a restore with the real `lstream` CLI.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  dump,
  lstream,
  metricValue,
  replicaStatus,
  runServer,
  startServer,
  startWriter,
  stopWithin,
  tempDir,
  until,
  write,
} from './helpers.js';

let dir: string;
let cleanup: () => void;
beforeAll(() => ({ dir, cleanup } = tempDir('lstream-server-e2e-')));
afterAll(() => cleanup());

/** Writes a config for one database `name` with a file replica; returns the paths. */
function oneDbConfig(name: string, top = ''): { db: string; replica: string; configPath: string } {
  const db = join(dir, `${name}.db`);
  const replica = join(dir, `${name}-replica`);
  const configPath = join(dir, `${name}.yml`);
  writeFileSync(configPath, `addr: "127.0.0.1:0"\n${top}dbs:\n  - path: ${db}\n    replicas:\n      - url: file://${replica}\n`);
  return { db, replica, configPath };
}

/** Rows of `lstream snapshots` output for a database: [generation, index]. */
function snapshotsOf(configPath: string, db: string): { generation: string; index: number }[] {
  const r = lstream(['snapshots', '-config', configPath, db]);
  expect(r.stderr).toBe('');
  return r.stdout
    .trim()
    .split('\n')
    .slice(1)
    .map((l) => l.split(/\s+/))
    .map((c) => ({ generation: c[1]!, index: Number(c[2]) }));
}

describe('lstream-server', () => {
  it('reports a bad config with its key and line, and exits non-zero before serving', () => {
    const configPath = join(dir, 'bad.yml');
    writeFileSync(configPath, `dbs:\n  - path: ${join(dir, 'bad.db')}\n    replicas:\n      - url: file://${join(dir, 'bad-replica')}\n        sync_interval: 1s\n`);
    const r = runServer(['-config', configPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${configPath}:5:`);
    expect(r.stderr).toContain('dbs[0].replicas[0].sync_interval');
    expect(r.stderr).toContain("Did you mean 'sync-interval'?");
    expect(r.stdout).not.toContain('serving');

    const addr = runServer(['-config', configPath.replace('bad.yml', 'missing.yml')]);
    expect(addr.code).toBe(1);
    expect(addr.stderr).toContain('config file not found');
  });

  it('serves metrics that move with commits, flips readiness and lag when storage fails and recovers, and exits 0 on SIGTERM after a final sync', async () => {
    const { db, replica, configPath } = oneDbConfig('main');
    write(db, ['--rows', '20']);
    const server = await startServer(['-config', configPath]);
    const { url } = server;
    try {
      expect(await (await fetch(`${url}/healthz`)).text()).toBe('ok\n');
      await until('the replica to be in sync', async () => {
        const r = await replicaStatus(url, 'main.db', 'file');
        return r?.state === 'in-sync' && r.position !== null ? r : undefined;
      });
      const ready = await fetch(`${url}/readyz`);
      expect(ready.status).toBe(200);

      // Metrics move as the writer commits.
      const scrape = async () => {
        const res = await fetch(`${url}/metrics`);
        expect(res.status).toBe(200);
        return res.text();
      };
      const before = await scrape();
      const syncs0 = metricValue(before, 'litestream_sync_count', db) ?? 0;
      const bytes0 = metricValue(before, 'litestream_replica_wal_bytes', db) ?? 0;
      const writer = startWriter(db, ['--batch', '5', '--interval-ms', '50']);
      await writer.waitFor(/committed 100$/);
      await until('metrics to count the new commits', async () => {
        const text = await scrape();
        const syncs = metricValue(text, 'litestream_sync_count', db) ?? 0;
        const bytes = metricValue(text, 'litestream_replica_wal_bytes', db) ?? 0;
        return syncs > syncs0 + 2 && bytes > bytes0 ? true : undefined;
      });

      // Storage becomes unavailable: the replica directory is replaced by a regular file (this works
      // as root too, where chmod 000 would not stop anything).
      renameSync(replica, `${replica}.away`);
      writeFileSync(replica, 'not a directory\n');
      const failing = await until('the replica to fail and fall behind', async () => {
        const r = await replicaStatus(url, 'main.db', 'file');
        return r && r.state === 'failing' && r.lagMs > r.lagLimitMs ? r : undefined;
      });
      expect(failing.lastError).toMatch(/ENOTDIR|EEXIST|not a directory/i);
      const notReady = await until('/readyz to answer 503', async () => {
        const res = await fetch(`${url}/readyz`);
        return res.status === 503 ? res.text() : undefined;
      });
      expect(notReady).toContain('database main.db replica file');
      expect(notReady).toContain('behind');
      // The sampled history the dashboard charts shows the rise too (sampled once a second).
      await until('a lag sample above the limit', async () => {
        const lag = (await (await fetch(`${url}/api/v1/lag`)).json()) as { series: { samples: [number, number][] }[] };
        return lag.series[0]!.samples.some((s) => s[1] > failing.lagLimitMs) ? true : undefined;
      });
      const errors = (await (await fetch(`${url}/api/v1/errors`)).json()) as { errors: { kind: string; replica?: string }[] };
      expect(errors.errors.some((e) => e.kind === 'replica-error' && e.replica === 'file')).toBe(true);

      // Storage comes back; with the writer paused the lag returns to exactly 0.
      rmSync(replica);
      renameSync(`${replica}.away`, replica);
      writer.child.kill('SIGUSR1');
      await writer.waitFor(/^paused /);
      await until('the replica to catch up', async () => {
        const r = await replicaStatus(url, 'main.db', 'file');
        return r && r.state === 'in-sync' && r.lagMs === 0 ? r : undefined;
      });
      await until('/readyz to answer 200', async () => ((await fetch(`${url}/readyz`)).status === 200 ? true : undefined));

      // More commits, then the writer stops and the server gets SIGTERM: exit 0 within 10 s.
      const from = writer.lines.length;
      writer.child.kill('SIGUSR2');
      await writer.waitFor(/^committed /, 30_000, from);
      expect(await writer.stop('SIGTERM')).toBe(0);
      expect(await stopWithin(server.proc, 10_000)).toBe(0);
      expect(server.proc.lines.some((l) => l.includes('stopped after a final sync'))).toBe(true);
    } finally {
      await server.proc.stop('SIGKILL');
    }

    const out = join(dir, 'main-restored.db');
    const r = lstream(['restore', '-config', configPath, '-o', out, '-integrity-check', db]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const source = dump(db);
    const restored = dump(out);
    expect(restored.integrity).toBe('ok');
    expect(restored.rows.length).toBeGreaterThan(120);
    expect(restored.rows).toEqual(source.rows);
  });

  it('shows the replicas of a database that does not exist yet as waiting, stays ready, and replicates it once the app creates it', async () => {
    const { db, configPath } = oneDbConfig('later');
    const server = await startServer(['-config', configPath]);
    const { url } = server;
    try {
      const waiting = await until('the replica to show it waits', async () => {
        const r = await replicaStatus(url, 'later.db', 'file');
        return r?.state === 'waiting' ? r : undefined;
      });
      expect(waiting.position).toBeNull();
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      write(db, ['--rows', '10']);
      await until('the replica to be in sync', async () => {
        const r = await replicaStatus(url, 'later.db', 'file');
        return r?.state === 'in-sync' && r.position !== null ? r : undefined;
      });
      expect(await stopWithin(server.proc, 10_000)).toBe(0);
    } finally {
      server.proc.child.kill('SIGKILL');
    }
  });

  it('on a non-loopback bind requires the bearer token for the API and snapshots, keeps /metrics and /healthz open, and snapshots on request', async () => {
    const token = 'srv-tok-7f3a9c21b8e4d650';
    for (const sub of ['a', 'b']) mkdirSync(join(dir, sub), { recursive: true });
    const configPath = join(dir, 'auth.yml');
    const mainDb = join(dir, 'authmain.db');
    writeFileSync(
      configPath,
      `addr: "0.0.0.0:0"
dbs:
  - name: main
    path: ${mainDb}
    replicas:
      - url: file://${join(dir, 'authmain-replica')}
  - path: ${join(dir, 'a', 'app.db')}
    replicas:
      - url: file://${join(dir, 'a-replica')}
  - path: ${join(dir, 'b', 'app.db')}
    replicas:
      - url: file://${join(dir, 'b-replica')}
`,
    );
    write(mainDb, ['--rows', '30']);
    write(join(dir, 'a', 'app.db'), ['--rows', '5']);
    write(join(dir, 'b', 'app.db'), ['--rows', '5']);
    // Surrounding whitespace, as a token read from a secrets file has, is not part of the token.
    const server = await startServer(['-config', configPath], { LSTREAM_SERVER_TOKEN: ` ${token}\n` });
    const { url } = server;
    const auth = { authorization: `Bearer ${token}` };
    try {
      expect((await fetch(`${url}/metrics`)).status).toBe(200);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      expect((await fetch(`${url}/api/v1/databases`)).status).toBe(401);
      expect((await fetch(`${url}/api/v1/databases`, { headers: { authorization: 'Bearer wrong-token' } })).status).toBe(401);
      expect((await fetch(`${url}/api/v1/databases`, { headers: { authorization: token } })).status).toBe(401);
      expect((await fetch(`${url}/api/v1/databases/main/snapshot`, { method: 'POST' })).status).toBe(401);

      const ok = await fetch(`${url}/api/v1/databases`, { headers: auth });
      expect(ok.status).toBe(200);
      expect(await ok.text()).not.toContain(token);
      await until('the replica of main to be in sync', async () => {
        const r = await replicaStatus(url, 'main', 'file', token);
        return r?.state === 'in-sync' && r.position !== null ? r : undefined;
      });

      const before = snapshotsOf(configPath, mainDb);
      const res = await fetch(`${url}/api/v1/databases/main/snapshot`, { method: 'POST', headers: auth });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { snapshots: { replica: string; generation: string; index: number; size: number }[] };
      expect(body.snapshots).toHaveLength(1);
      const taken = body.snapshots[0]!;
      expect(taken).toMatchObject({ replica: 'file' });
      expect(taken.size).toBeGreaterThan(0);
      const after = snapshotsOf(configPath, mainDb);
      expect(after.length).toBe(before.length + 1);
      expect(after).toContainEqual({ generation: taken.generation, index: taken.index });
      const listed = await until('the API to list the new snapshot', async () => {
        const r = await replicaStatus(url, 'main', 'file', token);
        return r && r.snapshotCount === after.length ? r : undefined;
      });
      expect(listed.generations.flatMap((g) => g.snapshots.map((s) => s.index))).toContain(taken.index);

      // Two databases default to the name app.db: ambiguous. Unknown names are 404.
      expect((await fetch(`${url}/api/v1/databases/app.db/snapshot`, { method: 'POST', headers: auth })).status).toBe(409);
      expect((await fetch(`${url}/api/v1/databases/nope/snapshot`, { method: 'POST', headers: auth })).status).toBe(404);
      expect((await fetch(`${url}/api/v1/databases/main/snapshot`, { headers: auth })).status).toBe(405);
      expect((await fetch(`${url}/api/v1/databases/%E0%A4%A/snapshot`, { method: 'POST', headers: auth })).status).toBe(400);

      // The two app.db keep their own lag history (one sample a second each, never merged).
      const lag = await until('two lag samples for each app.db', async () => {
        const body = (await (await fetch(`${url}/api/v1/lag`, { headers: auth })).json()) as {
          series: { db: string; path: string; samples: [number, number][] }[];
        };
        const apps = body.series.filter((x) => x.db === 'app.db');
        return apps.length === 2 && apps.every((x) => x.samples.length >= 2) ? apps : undefined;
      });
      expect(lag.map((x) => x.path).sort()).toEqual([join(dir, 'a', 'app.db'), join(dir, 'b', 'app.db')]);
      for (const x of lag) {
        const times = x.samples.map((p) => p[0]);
        expect(new Set(times).size).toBe(times.length);
      }

      expect(await stopWithin(server.proc, 10_000)).toBe(0);
      expect(server.proc.lines.join('\n') + server.proc.stderr).not.toContain(token);
    } finally {
      await server.proc.stop('SIGKILL');
    }
  });

  it('on a non-loopback bind without a token keeps the API off, naming the key and variable, and still serves /metrics and /healthz', async () => {
    const { db, configPath } = oneDbConfig('notoken');
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace('127.0.0.1:0', ':0'));
    write(db, ['--rows', '5']);
    const server = await startServer(['-config', configPath]);
    try {
      const res = await fetch(`${server.url}/api/v1/databases`);
      expect(res.status).toBe(403);
      const { error } = (await res.json()) as { error: string };
      expect(error).toContain('server.token');
      expect(error).toContain('LSTREAM_SERVER_TOKEN');
      expect((await fetch(`${server.url}/api/v1/databases/notoken.db/snapshot`, { method: 'POST' })).status).toBe(403);
      expect((await fetch(`${server.url}/metrics`)).status).toBe(200);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      expect(server.proc.lines.some((l) => l.includes('level=ERROR') && l.includes('server.token'))).toBe(true);
      expect(await stopWithin(server.proc, 10_000)).toBe(0);
    } finally {
      await server.proc.stop('SIGKILL');
    }
  });

  it('-addr overrides the config, and -exec runs a child whose exit stops the server after a final sync', async () => {
    const { db, configPath } = oneDbConfig('exec');
    // The config's addr (an address no interface here has: listening on it would fail) is not used
    // when -addr is given.
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace('127.0.0.1:0', '192.0.2.1:9'));
    write(db, ['--rows', '5']);
    const writer = join(import.meta.dirname, '..', '..', 'cli', 'test', 'writer.mjs');
    const server = await startServer(['-config', configPath, '-addr', '127.0.0.1:0', '-exec', `"${process.execPath}" ${writer} ${db} --rows 300 --batch 3`]);
    try {
      expect(await server.proc.exited).toBe(0);
      expect(server.proc.lines.some((l) => l.includes('subprocess exited'))).toBe(true);
      expect(server.proc.lines.some((l) => l.includes('stopped after a final sync'))).toBe(true);
    } finally {
      await server.proc.stop('SIGKILL');
    }
    const out = join(dir, 'exec-restored.db');
    const r = lstream(['restore', '-config', configPath, '-o', out, db]);
    expect(r.code).toBe(0);
    expect(dump(out).rows).toEqual(dump(db).rows);
    expect(dump(out).rows.length).toBe(305);
  });
});
