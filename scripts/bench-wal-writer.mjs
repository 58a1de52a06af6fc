// Benchmark helper: grows the WAL of an existing database to at least <bytes> with realistic
// transactions from its own process, then dies with SIGKILL so the WAL is left as SQLite wrote it.
// Usage: node bench-wal-writer.mjs <db> <bytes>
import { existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';

const [dbPath, bytes] = process.argv.slice(2);
const walPath = `${dbPath}-wal`;
const db = new Database(dbPath);
db.pragma('wal_autocheckpoint = 0');
const upd = db.prepare("UPDATE events SET payload = json_set(payload, '$.ms', ?) WHERE id % 50 = ?");
const ins = db.prepare('INSERT INTO events(kind, at, payload, tag) VALUES (?, ?, ?, randomblob(16))');
for (let n = 0; (existsSync(walPath) ? statSync(walPath).size : 0) < Number(bytes); n++) {
  db.transaction(() => {
    upd.run(n, n % 50);
    for (let j = 0; j < 500; j++) ins.run(j % 17, n, JSON.stringify({ n, j, pad: 'x'.repeat(j % 200) }));
  })();
}
process.kill(process.pid, 'SIGKILL');
