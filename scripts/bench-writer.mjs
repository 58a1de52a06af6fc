// Benchmark app: writes to a database from its own process, as an application would.
//   lag <db> <everyMs> <seconds>   one small commit every <everyMs>; prints "<id> <epochMs>" after each commit
//   bulk <db> <bytes>              one transaction of about <bytes> of new rows, then exits
//   churn <db>                     transactions updating random rows until SIGTERM (WAL volume, steady db size)
//   grow <db>                      transactions inserting rows (and updating a few) until SIGTERM: the database grows with the WAL
import Database from 'better-sqlite3';

const [mode, dbPath, a, b] = process.argv.slice(2);
const db = new Database(dbPath, { timeout: 10_000 });
db.pragma('journal_mode = wal');
db.pragma('wal_autocheckpoint = 0');
const now = () => performance.timeOrigin + performance.now();
let stop = false;
process.on('SIGTERM', () => (stop = true));

if (mode === 'lag') {
  db.exec('CREATE TABLE IF NOT EXISTS lag(id INTEGER PRIMARY KEY, at REAL, pad TEXT)');
  const ins = db.prepare('INSERT INTO lag(at, pad) VALUES (?, ?)');
  const every = Number(a);
  const end = Date.now() + Number(b) * 1000;
  while (Date.now() < end && !stop) {
    const id = ins.run(now(), 'x'.repeat(200)).lastInsertRowid;
    process.stdout.write(`${id} ${now()}\n`);
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
    await new Promise((r) => setTimeout(r, 2));
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
