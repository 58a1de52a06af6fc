// The demo's application: a separate process that commits a few transactions to the example database.
import Database from 'better-sqlite3';

const [dbPath, txns = '5'] = process.argv.slice(2);
const db = new Database(dbPath, { timeout: 5000 });
db.pragma('journal_mode = wal');
db.pragma('wal_autocheckpoint = 0');
const ins = db.prepare('INSERT INTO notes(body, created_at) VALUES (?, ?)');
for (let t = 0; t < Number(txns); t++) {
  db.transaction(() => {
    for (let i = 0; i < 200; i++) ins.run(`note ${t}-${i} ${'lorem ipsum '.repeat(1 + (i % 7))}`, new Date().toISOString());
  })();
}
db.close();
