// lstream round-trip demo: replicate an example SQLite database (a snapshot plus the WAL its writer
// produced) to a file replica next to it, restore the replica to a new file, and check the result.
// Usage: pnpm demo [dir]   (default ./example)
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { FileReplicaClient } from '@ls/client-file';
import {
  Pos,
  collect,
  listGenerations,
  listSnapshots,
  listWalSegments,
  newGenerationName,
  openSnapshot,
  openWalSegment,
  writeSnapshot,
  writeWalSegment,
} from '@ls/core';
import { WalApplier, WalFrameReader } from '@ls/wal';

const dir = resolve(process.argv[2] ?? 'example');
const dbPath = join(dir, 'app.db');
const replicaDir = join(dir, 'replica');
const restored = join(dir, 'restored.db');
const writer = fileURLToPath(new URL('./demo-writer.mjs', import.meta.url));
const say = (s) => process.stdout.write(`${s}\n`);

await mkdir(dir, { recursive: true });
await rm(replicaDir, { recursive: true, force: true });
await rm(restored, { force: true });

// 1. The example database, created if missing. lstream keeps its own connection open with a read
//    transaction, so only lstream decides when the WAL is checkpointed.
const db = new Database(dbPath);
db.pragma('journal_mode = wal');
db.pragma('wal_autocheckpoint = 0');
db.exec('CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL)');
db.pragma('wal_checkpoint(TRUNCATE)');
db.exec('BEGIN');
db.prepare('SELECT count(*) FROM notes').get();

// 2. Snapshot: the database file at the start of WAL index 0 of a new generation.
const client = new FileReplicaClient({ root: replicaDir });
const generation = newGenerationName();
const snap = await writeSnapshot(client, generation, 0, createReadStream(dbPath));
say(`snapshot   ${generation} index 0: ${(await stat(dbPath)).size} bytes -> ${snap.size} bytes LZ4`);

// 3. The application writes in its own process; its commits land in the WAL.
execFileSync(process.execPath, [writer, dbPath, '6'], { stdio: 'inherit' });

// 4. Ship the committed part of the WAL as segments cut at transaction boundaries.
const wal = await readFile(`${dbPath}-wal`);
const reader = new WalFrameReader([wal]);
await reader.header();
let segStart = 0;
let txns = 0;
for (let f = await reader.next(); f; f = await reader.next()) {
  if (f.commitSize === 0) continue;
  if (++txns % 2 === 0) {
    const end = reader.lastCommitOffset;
    const seg = await writeWalSegment(client, new Pos(generation, 0, segStart), wal.subarray(segStart, end));
    say(`segment    ${new Pos(generation, 0, segStart)}: ${end - segStart} bytes -> ${seg.size} bytes LZ4`);
    segStart = end;
  }
}
if (segStart < reader.lastCommitOffset) {
  await writeWalSegment(client, new Pos(generation, 0, segStart), wal.subarray(segStart, reader.lastCommitOffset));
  say(`segment    ${new Pos(generation, 0, segStart)}: ${reader.lastCommitOffset - segStart} bytes`);
}

// 5. Restore from the replica alone: snapshot -> <out>.tmp, apply every segment in order, fsync, rename.
const [gen] = await listGenerations(client);
const [latest] = (await collect(listSnapshots(client, gen))).slice(-1);
const tmp = `${restored}.tmp`;
const out = await open(tmp, 'w');
for await (const chunk of await openSnapshot(client, gen, latest.index)) await out.write(chunk);
await out.sync();
await out.close();
const segments = await collect(listWalSegments(client, gen));
async function* walBytes() {
  for (const s of segments) yield* await openWalSegment(client, new Pos(s.generation, s.index, s.offset));
}
const applier = await WalApplier.open(tmp, { strict: true });
const applied = await applier.apply(walBytes());
await applier.close();
await rename(tmp, restored);
say(`restored   ${relative(process.cwd(), restored)}: ${applied.transactions} transactions, ${applied.frames} frames from ${segments.length} segments`);

// 6. Check: integrity and the same rows as the live database.
const digest = (conn) => {
  const h = createHash('sha256');
  for (const r of conn.prepare('SELECT id, body, created_at FROM notes ORDER BY id').iterate()) h.update(`${r.id}|${r.body}|${r.created_at}\n`);
  return h.digest('hex').slice(0, 16);
};
db.exec('COMMIT');
const check = new Database(restored, { readonly: true });
const integrity = check.pragma('integrity_check', { simple: true });
const rows = check.prepare('SELECT count(*) AS n FROM notes').get().n;
const ok = integrity === 'ok' && digest(check) === digest(db) && rows === db.prepare('SELECT count(*) AS n FROM notes').get().n;
check.close();
db.close();
say(`check      integrity_check=${integrity}, ${rows} rows, content ${ok ? 'identical to the source' : 'DIFFERENT from the source'}`);
say(`replica    ${relative(process.cwd(), replicaDir)}/`);
for (const line of execFileSync('find', [replicaDir, '-type', 'f'], { encoding: 'utf8' }).trim().split('\n').sort()) {
  say(`             ${relative(replicaDir, line)}`);
}
process.exit(ok ? 0 : 1);
