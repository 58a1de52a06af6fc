import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import { LstreamError } from './errors.js';

/** SQLite checkpoint modes lstream uses (FULL never). */
export type CheckpointMode = 'PASSIVE' | 'RESTART' | 'TRUNCATE';

/** What `PRAGMA wal_checkpoint` returned: busy flag, frames in the WAL, frames checkpointed. */
export interface CheckpointResult {
  busy: boolean;
  log: number;
  checkpointed: number;
}

/** What `lockedCheckpoint` works on. */
export interface LockedCheckpointArgs {
  walPath: string;
  shadowPath: string;
  dbPath: string;
  pageSize: number;
  /** The shadow file's size: the WAL is copied from there. */
  start: number;
  /** The checksum chain at `start`. */
  chain: [number, number];
  salt1: number;
  salt2: number;
  bigEndian: boolean;
  /** The copy never goes past this offset. */
  maxEnd: number;
  /** The shadow file has writes not fsynced yet. */
  shadowDirty: boolean;
  /** Note the database file's size, mtime and inode after the checkpoint (for the shutdown marker). */
  statDb: boolean;
}

/** What `lockedCheckpoint` did. */
export interface LockedCheckpointResult extends Partial<CheckpointResult> {
  /** The write lock was taken (false: the app held it past the busy timeout, or the copy before it failed). */
  locked: boolean;
  /** Where the shadow file ends now, and the checksum chain there (copied, even when a later step failed). */
  end: number;
  chain: [number, number];
  /** The shadow file was fsynced and the checkpoint ran. */
  synced?: boolean;
  /** What stopped the copy: nothing was checkpointed. */
  problem?: 'too large' | 'shrank' | 'io';
  /** For 'io': the file system's error code and message. */
  code?: string;
  message?: string;
  /** The database file after the checkpoint (decimal strings), when asked for and present. */
  db?: { size: string; mtimeNs: string; ino: string };
}

/** Raised when lstream's own SQLite connection fails (bad database, not WAL-capable, I/O). */
export class SqliteError extends LstreamError {
  constructor(
    message: string,
    options?: { cause?: unknown; sqliteCode?: string; workerDead?: boolean },
  ) {
    super('ESQLITE', message, options);
    this.sqliteCode = options?.sqliteCode;
    this.workerDead = options?.workerDead ?? false;
  }

  /** SQLite's result code name (`SQLITE_BUSY`, ...), when SQLite reported one. */
  readonly sqliteCode: string | undefined;
  /** The worker thread is gone; the connection must be opened again. */
  readonly workerDead: boolean;

  /** Returns true when the error is lock contention that a later attempt may not meet. */
  get busy(): boolean {
    return this.sqliteCode === 'SQLITE_BUSY' || this.sqliteCode === 'SQLITE_LOCKED';
  }
}

/*
 * The worker owns two connections to the database. `reader` holds a read transaction at all times
 * except inside `checkpoint`, so no other process can checkpoint past lstream's position or restart
 * the WAL behind its back. `writer` takes the write lock around the final copy of a checkpoint.
 * They live in a worker because a checkpoint of a 40 MB WAL takes ~100 ms of synchronous I/O, which
 * would stall the event loop of the app lstream runs in. Plain JavaScript, evaluated: the worker must
 * run from `src/` under vitest and from `dist/` alike, without a TypeScript loader.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const Database = require(workerData.betterSqlite3);
let reader, writer;
const FRAME_HEADER = 24;
/** SQLite's WAL checksum over view's bytes [from, to) (8-byte steps), continuing the pair c. */
function walSum(view, from, to, bigEndian, c) {
  const le = !bigEndian;
  let a = c[0], b = c[1];
  for (let i = from; i < to; i += 8) {
    a = (a + view.getUint32(i, le) + b) >>> 0;
    b = (b + view.getUint32(i + 4, le) + a) >>> 0;
  }
  c[0] = a;
  c[1] = b;
}
/**
 * A file-system error (a full disk, the shadow directory removed) as a problem to report: it is not
 * the connection's, and the caller retries instead of reopening the database. Anything else is thrown.
 */
function fileProblem(err) {
  if (err && typeof err.code === 'string' && !err.code.startsWith('SQLITE')) {
    return { problem: 'io', code: err.code, message: String(err.message) };
  }
  throw err;
}
let copyBuf;
/** One buffer for every copy (they run one at a time): a new one each time grew this thread's heap. */
function copyBuffer(size) {
  if (!copyBuf || copyBuf.length < size) copyBuf = Buffer.allocUnsafeSlow(size);
  return copyBuf.subarray(0, size);
}
/**
 * Appends the committed frames of the WAL after byte 'start' to the shadow file (whose first
 * 'start' bytes match it), as the main thread's copy does: frames must carry the WAL's salts and
 * continue the checksum chain from 'chain', and only whole transactions are copied. Returns the new
 * end and the chain there, or the problem that stopped it.
 */
function copyCommitted(a) {
  const frameSize = a.pageSize + FRAME_HEADER;
  const wal = fs.openSync(a.walPath, 'r');
  try {
    const size = fs.fstatSync(wal).size;
    const end = size < 32 ? 0 : 32 + Math.floor((size - 32) / frameSize) * frameSize;
    const buf = copyBuffer(Math.max(1, Math.floor((1 << 20) / frameSize)) * frameSize);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    const chain = [a.chain[0] >>> 0, a.chain[1] >>> 0];
    let committed = a.start;
    let committedChain = chain.slice();
    scan: for (let off = a.start; off < end; ) {
      const n = fs.readSync(wal, buf, 0, Math.min(buf.length, end - off), off);
      if (n < frameSize) break;
      for (let p = 0; p + frameSize <= n; p += frameSize) {
        if (view.getUint32(p) === 0 || view.getUint32(p + 8) !== a.salt1 || view.getUint32(p + 12) !== a.salt2) break scan;
        const c = chain.slice();
        walSum(view, p, p + 8, a.bigEndian, c);
        walSum(view, p + FRAME_HEADER, p + frameSize, a.bigEndian, c);
        if (c[0] !== view.getUint32(p + 16) || c[1] !== view.getUint32(p + 20)) break scan;
        chain[0] = c[0];
        chain[1] = c[1];
        if (view.getUint32(p + 4) !== 0) {
          committed = off + p + frameSize;
          committedChain = chain.slice();
        }
      }
      off += n - (n % frameSize);
    }
    if (committed === a.start) return { end: a.start, chain: a.chain };
    if (committed > a.maxEnd) return { problem: 'too large' };
    const shadow = fs.openSync(a.shadowPath, 'r+');
    try {
      for (let off = a.start; off < committed; ) {
        const n = fs.readSync(wal, buf, 0, Math.min(buf.length, committed - off), off);
        if (n === 0) return { problem: 'shrank' };
        for (let w = 0; w < n; ) {
          const written = fs.writeSync(shadow, buf, w, n - w, off + w);
          if (written <= 0) throw new Error('short write to ' + a.shadowPath + ': the disk may be full');
          w += written;
        }
        off += n;
      }
      fs.ftruncateSync(shadow, committed);
    } finally {
      fs.closeSync(shadow);
    }
    return { end: committed, chain: committedChain };
  } finally {
    fs.closeSync(wal);
  }
}
function beginRead() {
  if (reader.inTransaction) return;
  reader.exec('BEGIN');
  try {
    reader.prepare('SELECT COUNT(1) FROM _litestream_seq').get();
  } catch (err) {
    reader.exec('ROLLBACK');
    throw err;
  }
}
const ops = {
  open({ path, busyTimeoutMs }) {
    reader = new Database(path, { fileMustExist: true, timeout: busyTimeoutMs });
    const mode = reader.pragma('journal_mode = wal', { simple: true });
    if (String(mode).toLowerCase() !== 'wal') throw new Error('journal_mode is ' + mode + ', could not switch the database to WAL');
    reader.pragma('wal_autocheckpoint = 0');
    reader.exec('CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)');
    reader.exec('CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER)');
    writer = new Database(path, { fileMustExist: true, timeout: busyTimeoutMs });
    writer.pragma('wal_autocheckpoint = 0');
    const pageSize = reader.pragma('page_size', { simple: true });
    beginRead();
    return { pageSize };
  },
  touch() {
    beginRead();
    writer.prepare('INSERT INTO _litestream_seq (id, seq) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET seq = seq + 1').run();
    return null;
  },
  checkpoint() {
    // Runs while 'writer' holds the write lock, so it is always PASSIVE: RESTART and TRUNCATE would
    // wait for that lock. Their effect (a WAL restart, a truncated file) comes from restart().
    if (reader.inTransaction) reader.exec('COMMIT');
    try {
      const [busy, log, checkpointed] = reader.prepare('PRAGMA wal_checkpoint(PASSIVE)').raw().get();
      return { busy: busy !== 0, log, checkpointed };
    } finally {
      beginRead();
    }
  },
  /**
   * The checkpoint step, whole, on this thread: copies what the main thread has not copied yet,
   * takes the write lock, copies the commits made meanwhile, fsyncs the shadow file, runs a PASSIVE
   * checkpoint, notes the database file's state, and releases the lock. None of it waits for the
   * main thread, where an app of this process may be busy, or blocked in a write of its own waiting
   * for that very lock. Reports where the shadow file ends (end, chain) whatever happened.
   */
  lockedCheckpoint(a) {
    beginRead();
    let end = a.start;
    let chain = a.chain;
    let dirty = a.shadowDirty;
    // The tail from 'end': a problem (a full disk, a WAL that shrank) stops here, reported with
    // where the shadow file ends; nothing is checkpointed then.
    const copy = () => {
      let c;
      try {
        c = copyCommitted({ ...a, start: end, chain });
      } catch (err) {
        return fileProblem(err);
      }
      if (c.problem) return { problem: c.problem };
      if (c.end !== end) dirty = true;
      end = c.end;
      chain = c.chain;
      return undefined;
    };
    const report = (fields) => ({ end, chain, ...fields });
    // The backlog first, without the lock (an app keeping the main thread busy leaves one): safe for
    // the reason the main thread's copy is, lstream's read transaction, which keeps anyone from
    // restarting the WAL. Under the lock only the commits made meanwhile remain.
    let problem = copy();
    if (problem) return report({ locked: false, ...problem });
    try {
      writer.exec('BEGIN IMMEDIATE');
    } catch (err) {
      if (err && (err.code === 'SQLITE_BUSY' || err.code === 'SQLITE_LOCKED')) return report({ locked: false });
      throw err;
    }
    try {
      problem = copy();
      if (problem) return report({ locked: true, ...problem });
      if (dirty) {
        try {
          const fd = fs.openSync(a.shadowPath, 'r+');
          try {
            fs.fsyncSync(fd);
          } finally {
            fs.closeSync(fd);
          }
        } catch (err) {
          return report({ locked: true, ...fileProblem(err) });
        }
        dirty = false;
      }
      const result = ops.checkpoint();
      let db;
      if (a.statDb) {
        try {
          const st = fs.statSync(a.dbPath, { bigint: true });
          db = { size: String(st.size), mtimeNs: String(st.mtimeNs), ino: String(st.ino) };
        } catch (err) {
          if (!err || err.code !== 'ENOENT') throw err;
        }
      }
      return report({ locked: true, synced: true, ...result, db });
    } finally {
      if (writer.inTransaction) writer.exec('ROLLBACK');
    }
  },
  restart({ truncate }) {
    // After a complete checkpoint the next write starts the WAL over from its beginning; with a
    // size limit, that write also truncates the file.
    if (truncate) writer.pragma('journal_size_limit = 0');
    try {
      ops.touch();
    } finally {
      if (truncate) writer.pragma('journal_size_limit = -1');
    }
    return null;
  },
  close() {
    if (writer) { if (writer.inTransaction) writer.exec('ROLLBACK'); writer.close(); }
    if (reader) { if (reader.inTransaction) reader.exec('ROLLBACK'); reader.close(); }
    return null;
  },
};
parentPort.on('message', ({ id, op, args }) => {
  try {
    parentPort.postMessage({ id, ok: true, value: ops[op](args || {}) });
  } catch (err) {
    parentPort.postMessage({ id, ok: false, error: { message: String(err && err.message || err), code: err && err.code } });
  }
});
`;

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: { message: string; code?: string };
}

/**
 * Copies of better-sqlite3 this thread has loaded (the app's, say) from another directory than the
 * one lstream's SQLite worker loads: `{ ours, others }`, `others` empty when there is none. Two
 * copies of SQLite in one process do not see each other's POSIX locks, so a connection closed in
 * either releases the locks the other holds on the same database (SQLite's "How To Corrupt", §2.2.1).
 */
export function betterSqlite3Copies(): { ours: string; others: string[] } {
  const require = createRequire(import.meta.url);
  const real = (p: string): string => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  };
  const ours = real(dirname(dirname(require.resolve('better-sqlite3'))));
  const others = new Set<string>();
  for (const file of Object.keys(require.cache)) {
    const m = /^(.*[\\/]better-sqlite3)[\\/]lib[\\/]index\.js$/.exec(file);
    if (!m) continue;
    const dir = real(m[1]!);
    if (dir !== ours) others.add(dir);
  }
  return { ours, others: [...others] };
}

/** What each worker operation is, in an error message. */
const OP_WORDS: Record<string, string> = {
  open: 'opening the database in SQLite',
  touch: "SQLite's write to lstream's table _litestream_seq",
  lockedCheckpoint: 'SQLite checkpoint (under the write lock)',
  restart: 'SQLite WAL restart after a checkpoint',
  close: 'closing the SQLite connection',
};

/**
 * lstream's connection to a replicated database, run in a worker thread. Calls are serialised in the
 * worker; every method resolves once SQLite has answered.
 */
export class SqliteConnection {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; op: string }>();
  #nextId = 1;
  #closed = false;
  #failure: Error | undefined;

  private constructor(readonly path: string) {
    const require = createRequire(import.meta.url);
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { betterSqlite3: require.resolve('better-sqlite3') } });
    this.#worker.unref();
    this.#worker.on('message', (m: Reply) => {
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (this.#pending.size === 0) this.#worker.unref();
      if (m.ok) p.resolve(m.value);
      else {
        const code = m.error?.code ? ` (${m.error.code})` : '';
        p.reject(
          new SqliteError(`${this.path}: ${OP_WORDS[p.op] ?? p.op} failed: ${m.error?.message ?? 'unknown error'}${code}`, {
            sqliteCode: m.error?.code,
          }),
        );
      }
    });
    this.#worker.on('error', (err) =>
      this.#fail(new SqliteError(`${this.path}: SQLite worker failed: ${err.message}`, { cause: err, workerDead: true })),
    );
    this.#worker.on('exit', (code) => {
      // Whatever was still queued can never be answered now.
      this.#fail(new SqliteError(`${this.path}: SQLite worker exited with code ${code}`, { workerDead: true }));
    });
  }

  /** The worker is gone; every call fails. */
  get failed(): boolean {
    return this.#failure !== undefined;
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  #call<T>(op: string, args?: object): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new SqliteError(`${this.path}: connection is closed`));
    const id = this.#nextId++;
    // The worker keeps the process alive only while a call is waiting on it.
    if (this.#pending.size === 0) this.#worker.ref();
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, op });
      this.#worker.postMessage({ id, op, args });
    });
  }

  /**
   * Opens the database in WAL mode with autocheckpoint off, creates the `_litestream_seq` and
   * `_litestream_lock` tables, and starts the held read transaction. Resolves with the page size.
   */
  static async open(path: string, busyTimeoutMs: number): Promise<{ conn: SqliteConnection; pageSize: number }> {
    const conn = new SqliteConnection(path);
    try {
      const { pageSize } = await conn.#call<{ pageSize: number }>('open', { path, busyTimeoutMs });
      return { conn, pageSize };
    } catch (err) {
      await conn.close().catch(() => undefined);
      throw err;
    }
  }

  /** Writes one row to `_litestream_seq`, which makes SQLite create (or restart) the WAL. */
  touch(): Promise<void> {
    return this.#call('touch');
  }

  /**
   * Takes the write lock, copies the WAL's commits after `start` to the shadow file and fsyncs it,
   * checkpoints (PASSIVE), optionally stats the database file, and releases the lock, all in the
   * worker: the lock is never held across a turn of this thread's event loop, which an app writing
   * to the same database from this thread may be blocking while it waits for the lock.
   */
  lockedCheckpoint(args: LockedCheckpointArgs): Promise<LockedCheckpointResult> {
    return this.#call('lockedCheckpoint', args);
  }

  /** Forces a WAL restart after a complete checkpoint; `truncate` also shrinks the WAL file to its new content. */
  restart(truncate: boolean): Promise<void> {
    return this.#call('restart', { truncate });
  }

  /** Ends both transactions and closes both connections and the worker. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      if (!this.#failure) await this.#call('close');
    } finally {
      this.#closed = true;
      await this.#worker.terminate();
    }
  }
}
