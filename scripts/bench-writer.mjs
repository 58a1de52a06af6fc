// Benchmark app: writes to a database from its own process, as an application would.
//   lag <db> <everyMs> <seconds>   one small commit every <everyMs>; prints "<id> <epochMs>" after each commit
//   bulk <db> <bytes>              one transaction of about <bytes> of new rows, then exits
//   churn <db>                     transactions updating random rows until SIGTERM (WAL volume, steady db size)
//   grow <db>                      transactions inserting rows (and updating a few) until SIGTERM: the database grows with the WAL
import { closeSync, openSync, readSync } from 'node:fs';
import Database from 'better-sqlite3';

const [mode, dbPath, a, b] = process.argv.slice(2);
const db = new Database(dbPath, { timeout: 10_000 });
db.pragma('journal_mode = wal');
db.pragma('wal_autocheckpoint = 0');
const now = () => performance.timeOrigin + performance.now();
let stop = false;
process.on('SIGTERM', () => (stop = true));

/** The end of the last commit frame of the current WAL (frames carrying the header's salts), scanning on from the last call. */
let scan = { salt: '', end: 32 };
function walCommitEnd() {
  const fd = openSync(`${dbPath}-wal`, 'r');
  try {
    const hdr = Buffer.alloc(32);
    readSync(fd, hdr, 0, 32, 0);
    const salt = hdr.subarray(16, 24).toString('hex');
    const frame = 24 + hdr.readUInt32BE(8);
    if (salt !== scan.salt) scan = { salt, end: 32 };
    const fh = Buffer.alloc(24);
    for (let off = scan.end; readSync(fd, fh, 0, 24, off) === 24; off += frame) {
      if (fh.subarray(8, 16).toString('hex') !== salt) break;
      if (fh.readUInt32BE(4) !== 0) scan.end = off + frame;
    }
    return { end: scan.end, salt };
  } finally {
    closeSync(fd);
  }
}

if (mode === 'lag') {
  db.exec('CREATE TABLE IF NOT EXISTS lag(id INTEGER PRIMARY KEY, at REAL, pad TEXT)');
  const ins = db.prepare('INSERT INTO lag(at, pad) VALUES (?, ?)');
  const every = Number(a);
  const end = Date.now() + Number(b) * 1000;
  while (Date.now() < end && !stop) {
    const id = ins.run(now(), 'x'.repeat(200)).lastInsertRowid;
    const at = now();
    // Where this commit ends in the WAL and which WAL it is (its salts), read from the WAL itself.
    const { end, salt } = walCommitEnd();
    process.stdout.write(`${id} ${at} ${end} ${salt}\n`);
    await new Promise((r) => setTimeout(r, every));
  }
} else if (mode === 'bulk') {
  db.exec('CREATE TABLE IF NOT EXISTS bulk(id INTEGER PRIMARY KEY, body TEXT)');
  const ins = db.prepare('INSERT INTO bulk(body) VALUES (?)');
  const rows = Math.ceil(Number(a) / 1100);
  db.transaction(() => {
    for (let i = 0; i < rows; i++) ins.run(`${i}:`.padEnd(1000, String.fromCharCode(97 + (i % 26))));
  })();
} else if (mode === 'grow') {
  // A short pause between transactions lets the replicator's checkpoints complete now and then, so
  // ~300 MiB of WAL spans ~200 indexes, the replica shape the issue's restore benchmark names (with no
  // pause, checkpoints rarely finish and the same WAL spans ~100).
  const pauseMs = Number(process.env.LSTREAM_BENCH_GROW_PAUSE_MS ?? 4);
  const n = db.prepare('SELECT max(id) AS n FROM churn').get().n;
  const ins = db.prepare('INSERT INTO churn(body, v) VALUES (?, 0)');
  const upd = db.prepare('UPDATE churn SET body = ?, v = v + 1 WHERE id = ?');
  let k = 0;
  while (!stop) {
    db.transaction(() => {
      for (let i = 0; i < 1200; i++) ins.run(`${k}-${i}-${JSON.stringify({ user: `u${(k * 7 + i) % 997}`, at: k * 1000 + i, tags: ['a', 'b', 'c'][i % 3] })}`.padEnd(560, ' .'));
      for (let i = 0; i < 20; i++) upd.run(`updated ${k}-${i}`, 1 + Math.floor(Math.random() * n));
    })();
    k++;
    await new Promise((r) => setTimeout(r, pauseMs));
  }
} else if (mode === 'churn') {
  const n = db.prepare('SELECT max(id) AS n FROM churn').get().n;
  const upd = db.prepare('UPDATE churn SET body = ?, v = v + 1 WHERE id = ?');
  let k = 0;
  while (!stop) {
    db.transaction(() => {
      for (let i = 0; i < 200; i++) {
        const id = 1 + Math.floor(Math.random() * n);
        upd.run(`${k}-${i}-${'y'.repeat(150 + ((k + i) % 60))}`, id);
      }
    })();
    k++;
    // An app pauses between transactions; a writer that never lets go of the lock starves every other connection.
    await new Promise((r) => setTimeout(r, 2));
  }
}
db.close();
