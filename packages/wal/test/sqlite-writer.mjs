// Writes a SQLite database in WAL mode from its own process, then dies with SIGKILL so the -wal file is
// left exactly as SQLite wrote it (a clean close would checkpoint and delete it).
// Usage: node sqlite-writer.mjs <db> <scenario> [pageSize]
import Database from 'better-sqlite3';

const [dbPath, scenario = 'basic', pageSizeArg] = process.argv.slice(2);
const db = new Database(dbPath);
if (pageSizeArg) db.pragma(`page_size = ${Number(pageSizeArg)}`);
db.pragma('journal_mode = wal');
db.pragma('wal_autocheckpoint = 0');

let seed = 42;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const text = (n) => Array.from({ length: n }, () => String.fromCharCode(97 + Math.floor(rand() * 26))).join('');

db.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, body TEXT, blob BLOB)');
db.exec('CREATE INDEX IF NOT EXISTS t_body ON t(body)');
const ins = db.prepare('INSERT INTO t(body, blob) VALUES (?, ?)');

function batches(n, size) {
  for (let b = 0; b < n; b++) {
    db.transaction(() => {
      for (let i = 0; i < size; i++) ins.run(text(20 + Math.floor(rand() * 200)), Buffer.from(text(16)));
    })();
  }
}

// A checkpoint before the writes makes the database file hold a base the WAL then builds on.
const checkpointFirst = () => db.pragma('wal_checkpoint(TRUNCATE)');

switch (scenario) {
  case 'basic':
    batches(20, 50);
    break;
  case 'mixed':
    batches(10, 100);
    checkpointFirst();
    batches(10, 100);
    db.exec('UPDATE t SET body = body || \'x\' WHERE id % 3 = 0');
    db.exec('DELETE FROM t WHERE id % 10 = 0');
    db.transaction(() => ins.run('big', Buffer.alloc(300_000, 7)))();
    break;
  case 'shrink':
    batches(10, 200);
    checkpointFirst();
    db.exec('DELETE FROM t WHERE id > 100');
    db.exec('VACUUM');
    batches(2, 10);
    break;
  case 'uncommitted-tail':
    batches(5, 50);
    // A small page cache makes SQLite spill dirty pages of the open transaction into the WAL
    // as frames without a commit marker.
    db.pragma('cache_size = 5');
    db.exec('BEGIN');
    for (let i = 0; i < 3000; i++) ins.run(text(200), Buffer.from(text(16)));
    break;
  case 'large':
    // About 40 MiB of WAL over a modest database.
    batches(40, 1000);
    break;
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
process.stdout.write('done\n', () => process.kill(process.pid, 'SIGKILL'));
