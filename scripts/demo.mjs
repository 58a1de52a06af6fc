// lstream's main job on a local default: lstream-server continuously replicates an example database
// (created if missing) to a file replica next to it, while a small writer app, run and supervised by
// the server (`exec`), adds notes; the dashboard shows it live. At the end the server is stopped with
// SIGTERM (final sync), the replica is restored and compared row by row with the database.
// Usage: pnpm demo [dir] [--seconds N] [--addr HOST:PORT]
//   (default ./example and 127.0.0.1:9090; runs until Ctrl-C unless --seconds is given)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { seconds: { type: 'string' }, addr: { type: 'string' } },
});
// lstream-server's default address, unless something (a Prometheus, say) already listens there.
values.addr ??= (await portIsFree('127.0.0.1', 9090)) ? '127.0.0.1:9090' : '127.0.0.1:0';
const dir = resolve(positionals[0] ?? 'example');
const dbPath = join(dir, 'app.db');
const replicaDir = join(dir, 'replica');
const configPath = join(dir, 'lstream.yml');
const restored = join(dir, 'restored.db');
const lstreamBin = fileURLToPath(new URL('../apps/cli/bin/lstream.js', import.meta.url));
const serverBin = fileURLToPath(new URL('../apps/server/bin/lstream-server.js', import.meta.url));
const writerScript = fileURLToPath(new URL('./demo-writer.mjs', import.meta.url));
const rel = (p) => relative(process.cwd(), p) || '.';
const say = (s) => process.stdout.write(`${s}\n`);

await mkdir(dir, { recursive: true });
for (const f of [restored, `${restored}-wal`, `${restored}-shm`]) await rm(f, { force: true });
if (!existsSync(dbPath)) {
  const db = new Database(dbPath);
  db.pragma('journal_mode = wal');
  db.exec('CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL)');
  db.close();
  say(`created ${rel(dbPath)}`);
}
await writeFile(
  configPath,
  `# lstream config (Litestream v0.3 format) written by the demo.
addr: "${values.addr}"
# The app: lstream-server runs it, forwards signals to it, and stops after a final sync when it exits.
exec: '"${process.execPath}" "${writerScript}" "${dbPath}"'
dbs:
  - name: app
    path: ${dbPath}
    replicas:
      - url: file://${replicaDir}
        sync-interval: 1s
        snapshot-interval: 1m
`,
);

say(`replicating ${rel(dbPath)} to ${rel(replicaDir)} with lstream-server (config ${rel(configPath)}); a writer adds a note every 200 ms`);
say(values.seconds ? `stopping after ${values.seconds}s` : 'press Ctrl-C to stop; lstream-server makes a final sync before it exits');
// Its own process group: Ctrl-C reaches only the demo, which sends the server exactly one SIGTERM
// (a second signal would make it exit without the final sync).
const server = spawn(process.execPath, [serverBin, '-config', configPath], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
const serverExit = new Promise((r) => server.on('exit', (code) => r(code)));
process.on('exit', () => {
  if (server.exitCode === null) server.kill('SIGKILL');
});
createInterface({ input: server.stdout }).on('line', (line) => {
  process.stdout.write(`${line}\n`);
  const m = /msg=serving url=(\S+)/.exec(line);
  if (m) say(`\n  dashboard: ${m[1]}   (metrics: ${m[1]}metrics, status API: ${m[1]}api/v1/databases)\n`);
});

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  server.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
if (values.seconds) setTimeout(stop, Number(values.seconds) * 1000);
const code = await serverExit;
if (code !== 0) {
  say(`lstream-server exited with ${code}`);
  process.exit(1);
}

say(`\nrestore it with:\n  node ${rel(lstreamBin)} restore -o ${rel(restored)} file://${replicaDir}`);
const r = spawnSync(process.execPath, [lstreamBin, 'restore', '-integrity-check', '-o', restored, `file://${replicaDir}`], { stdio: 'inherit' });
if (r.status !== 0) process.exit(1);

const rows = (p) => {
  const db = new Database(p, { readonly: true });
  try {
    return db.prepare('SELECT id, body, created_at FROM notes ORDER BY id').raw().all().map((x) => x.join('|'));
  } finally {
    db.close();
  }
};
const a = rows(dbPath);
const b = rows(restored);
const same = a.length === b.length && a.every((x, i) => x === b[i]);
say(`${rel(restored)}: ${b.length} notes, ${same ? 'identical to' : 'DIFFERENT FROM'} ${rel(dbPath)}`);
process.exit(same ? 0 : 1);

/** Resolves true when a TCP listener could bind host:port now. */
function portIsFree(host, port) {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, host, () => probe.close(() => resolve(true)));
  });
}
