// lstream's main job on a local default: continuous replication of an example database (created if
// missing, with a small writer app in its own process) to a file replica next to it, then a restore
// of that replica and a row-by-row check.
// Usage: pnpm demo [dir] [--seconds N]   (default ./example; runs until Ctrl-C unless --seconds is given)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { seconds: { type: 'string' } } });
const dir = resolve(positionals[0] ?? 'example');
const dbPath = join(dir, 'app.db');
const replicaDir = join(dir, 'replica');
const configPath = join(dir, 'lstream.yml');
const restored = join(dir, 'restored.db');
const lstreamBin = fileURLToPath(new URL('../apps/cli/bin/lstream.js', import.meta.url));
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
dbs:
  - path: ${dbPath}
    replicas:
      - url: file://${replicaDir}
        sync-interval: 1s
        snapshot-interval: 1m
`,
);

say(`replicating ${rel(dbPath)} to ${rel(replicaDir)} (config ${rel(configPath)}); a writer adds a note every 200 ms`);
say(values.seconds ? `stopping after ${values.seconds}s` : 'press Ctrl-C to stop; lstream makes a final sync before it exits');
const writer = spawn(process.execPath, [writerScript, dbPath], { stdio: 'inherit' });
const lstream = spawn(process.execPath, [lstreamBin, 'replicate', '-config', configPath], { stdio: 'inherit' });
const lstreamExit = new Promise((r) => lstream.on('exit', (code) => r(code)));
const writerExit = new Promise((r) => writer.on('exit', (code) => r(code)));

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  writer.kill('SIGTERM');
  writerExit.then(() => lstream.kill('SIGTERM'));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
if (values.seconds) setTimeout(stop, Number(values.seconds) * 1000);
const code = await lstreamExit;
if (code !== 0) {
  say(`lstream replicate exited with ${code}`);
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
