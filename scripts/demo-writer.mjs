// The demo's application: a separate process that adds a note to the example database every
// 200 ms until it is stopped, as a small app would.
import Database from 'better-sqlite3';

const [dbPath] = process.argv.slice(2);
const db = new Database(dbPath, { timeout: 5000 });
db.pragma('journal_mode = wal');
db.exec('CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL)');
const ins = db.prepare('INSERT INTO notes(body, created_at) VALUES (?, ?)');
let n = 0;
const timer = setInterval(() => {
  n++;
  ins.run(`note ${n} ${'lorem ipsum '.repeat(1 + (n % 7))}`, new Date().toISOString());
}, 200);
const stop = () => {
  clearInterval(timer);
  db.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
