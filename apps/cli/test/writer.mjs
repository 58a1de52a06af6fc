// A SQLite writer in its own process, as an app would be: WAL mode, busy timeout, commits rows
// until told to stop. Usage: node writer.mjs DB_PATH [--rows N] [--interval-ms N] [--batch N] [--size N]
// Prints "committed <id>" after each commit when --report is given. SIGUSR1 pauses it between
// transactions (it prints "paused <last id>"), SIGUSR2 resumes it.
import Database from 'better-sqlite3';
import { parseArgs } from 'node:util';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    rows: { type: 'string', default: '0' },
    'interval-ms': { type: 'string', default: '0' },
    batch: { type: 'string', default: '1' },
    size: { type: 'string', default: '100' },
    report: { type: 'boolean', default: false },
    autocheckpoint: { type: 'string', default: '1000' },
  },
});
const db = new Database(positionals[0]);
db.pragma('journal_mode = wal');
db.pragma('busy_timeout = 5000');
db.pragma(`wal_autocheckpoint = ${Number(values.autocheckpoint)}`);
db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL, n INTEGER NOT NULL)');
const insert = db.prepare('INSERT INTO t (body, n) VALUES (?, ?)');
const rows = Number(values.rows);
const batch = Number(values.batch);
const size = Number(values.size);
const interval = Number(values['interval-ms']);
let stop = false;
process.on('SIGTERM', () => (stop = true));
process.on('SIGINT', () => (stop = true));
// SIGUSR1 pauses between transactions (never inside one) and prints "paused <last id>"; SIGUSR2 resumes.
let pauseRequested = false;
let resume;
process.on('SIGUSR1', () => (pauseRequested = true));
process.on('SIGUSR2', () => resume?.());
const body = (i) => `row-${i}-`.padEnd(size, String.fromCharCode(97 + (i % 26)));
let n = 0;
const tx = db.transaction((k) => {
  let last = 0;
  for (let j = 0; j < k; j++) last = Number(insert.run(body(n + j), n + j).lastInsertRowid);
  return last;
});
while (!stop && (rows === 0 || n < rows)) {
  const k = rows === 0 ? batch : Math.min(batch, rows - n);
  const last = tx(k);
  n += k;
  if (values.report) process.stdout.write(`committed ${last}\n`);
  if (interval > 0) await new Promise((r) => setTimeout(r, interval));
  if (pauseRequested) {
    pauseRequested = false;
    process.stdout.write(`paused ${last}\n`);
    const keepAlive = setInterval(() => undefined, 1 << 30); // signal handlers alone do not keep Node running
    await new Promise((r) => (resume = r));
    clearInterval(keepAlive);
    resume = undefined;
  }
}
db.close();
