import { realpathSync, watch, type FSWatcher } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  WAL_HEADER_SIZE,
  WalChain,
  frameAlign,
  parseWalFrameHeader,
  parseWalHeader,
  readAt,
  writeAt,
  walFrameSize,
  walSizeForFrames,
  type WalHeader,
} from '@ls/wal';
import type { ReplicaClient } from './client.js';
import { InvalidArgumentError, LstreamError } from './errors.js';
import { LstreamEmitter } from './events.js';
import { fsyncDir, readFileRange, statOrUndefined, writeFileAtomic } from './fs-util.js';
import { instrumentClient } from './instrument.js';
import { DatabaseFile } from './database-file.js';
import { LockFile, LockedError, type LockHolder } from './lock-file.js';
import { LongTimer } from './timers.js';
import { noopLogger, type Logger } from './logger.js';
import {
  BUSY_TIMEOUT_MS,
  checkNumericOptions,
  CHECKPOINT_INTERVAL_MS,
  MAX_CHECKPOINT_PAGE_COUNT,
  MAX_SHADOW_WAL_BYTES,
  MIN_CHECKPOINT_PAGE_COUNT,
  MONITOR_INTERVAL_MS,
  TRUNCATE_PAGE_COUNT,
  type DbOptions,
  type ReplicaOptions,
} from './options.js';
import { MAX_WAL_INDEX, MAX_WAL_OFFSET, Pos, comparePos, isGenerationName, newGenerationName } from './pos.js';
import { Replica, type ReplicaStatus } from './replica.js';
import { SqliteConnection, SqliteError, betterSqlite3Copies, type CheckpointMode } from './sqlite-connection.js';

/** Bytes read from the WAL per call while copying it to the shadow WAL. */
const COPY_CHUNK_BYTES = 1024 * 1024;
/** Debounce for file events: commits arriving within this window are copied together. */
const WATCH_DEBOUNCE_MS = 0;

/** Raised when the database cannot be replicated (not a SQLite file, not WAL-capable, meta dir unusable). */
export class DbError extends LstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EDB', message, options);
  }
}

/** Status of a replicated database, for status pages and metrics (see `Db.status`). */
export interface DbStatus {
  /** Absolute path of the database. */
  path: string;
  /** Position of the shadow WAL (undefined until the first sync of an existing database). */
  pos: Pos | undefined;
  /** Database page size (0 until the database is open). */
  pageSize: number;
  /** Size of the database file in bytes (0 while it does not exist). */
  dbBytes: number;
  /** Size of the `-wal` file in bytes (0 while it does not exist). */
  walBytes: number;
  /** Bytes in the shadow WAL files of the current generation, as Litestream's `litestream_shadow_wal_size`. */
  shadowWalBytes: number;
  /** When the last sync succeeded (undefined before the first). */
  lastSyncAt: Date | undefined;
  /** The last sync error, cleared by a successful sync. */
  lastError: unknown;
  replicas: ReplicaStatus[];
}

/** Written to the meta directory at a clean close, so a restart can continue the generation. */
interface ShutdownMarker {
  generation: string;
  index: number;
  shadowSize: number;
  dbSize: number;
  dbMtimeNs: string;
  dbIno: number;
}

/** Returns the meta directory Litestream uses for `dbPath`: `<dir>/.<name>-litestream`. */
export function defaultMetaPath(dbPath: string): string {
  return join(dirname(dbPath), `.${basename(dbPath)}-litestream`);
}

/** Formats a shadow WAL file name: `%08x.wal`. */
export function shadowWalName(index: number): string {
  return `${index.toString(16).padStart(8, '0')}.wal`;
}

/** The shadow WAL file being appended to: one SQLite WAL index of the current generation. */
interface Shadow {
  generation: string;
  index: number;
  header: WalHeader;
  headerBytes: Buffer;
  /** End of the last committed transaction copied (frame-aligned). */
  size: number;
  /** Checksum chain value at `size`. */
  checksum: [number, number];
}

/**
 * The absolute path of the database file with symbolic links resolved, as SQLite resolves them: it
 * keeps the -wal and -shm files next to the file a link points to, so that is where lstream must
 * watch (and where its shadow directory and lock go, so a second lstream started through the link
 * is refused). A database that does not exist yet resolves through its directory.
 */
function realDbPath(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    try {
      return join(realpathSync(dirname(abs)), basename(abs));
    } catch {
      return abs;
    }
  }
}

/**
 * One replicated SQLite database: it watches the WAL, copies every committed transaction into the
 * shadow WAL in the meta directory, checkpoints on lstream's schedule, and feeds its replicas.
 *
 * The database need not exist yet; replication starts once it does.
 */
export class Db {
  /** The database file, as given (made absolute); logs and metrics name it so. */
  readonly path: string;
  readonly metaPath: string;
  readonly events: LstreamEmitter;
  readonly replicas: Replica[] = [];
  readonly logger: Logger;
  readonly #options: Required<Omit<DbOptions, 'logger' | 'metaPath'>>;

  #conn: SqliteConnection | undefined;
  #pageSize = 0;
  #shadow: Shadow | undefined;
  #lock: LockFile | undefined;
  /** Our checkpoint emptied the WAL into the database: the next WAL header starts a new index, not a generation. */
  #expectRestart = false;
  #lastCheckpointAt = Date.now();
  #snapshotting = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #watcher: FSWatcher | undefined;
  #timer: LongTimer | undefined;
  #kick: NodeJS.Timeout | undefined;
  #syncing = false;
  #dirty = false;
  /** Set once `open` succeeded (a failed open may be tried again). */
  #opened = false;
  #opening = false;
  #closed = false;
  /** The running or finished `close`: a second call waits for it. */
  #closing: Promise<void> | undefined;
  /** Set once close() has closed the SQLite connection for good: nothing may open it again. */
  #connectionClosed = false;
  #lastError: unknown;
  #lastSyncAt: Date | undefined;
  #waitingForDb = false;

  /** True while the database file does not exist and lstream waits for it to be created (nothing to replicate). */
  get waitingForDatabase(): boolean {
    return this.#waitingForDb;
  }
  /** Why the generation found on disk could not be continued, when it was found but not loaded. */
  #noShadowReason: string | undefined;
  /** Set when the database file was removed or replaced under the connection: the next sync starts a generation. */
  #replaced: string | undefined;
  /**
   * lstream's descriptor of the database file the connection has open (see database-file.ts), also
   * how a replaced file is noticed (device and inode).
   */
  #dbFile: DatabaseFile | undefined;
  /** When the current run of failed syncs began (undefined while syncs succeed). */
  #failingSince: number | undefined;
  #copyBuf: Buffer | undefined;
  /** WAL bytes copied to shadow files since open (for the 'db-sync' event). */
  #copiedBytes = 0;
  /** The current shadow file has writes not yet fsynced. */
  #shadowDirty = false;
  /**
   * `path` with symbolic links resolved: SQLite's WAL is next to it (resolved again whenever the
   * connection opens: a link may point to a file that did not exist yet).
   */
  #realPath: string;

  /** The database's WAL file, next to the file `path` leads to. */
  get walPath(): string {
    return `${this.#realPath}-wal`;
  }

  constructor(path: string, options: DbOptions & { events?: LstreamEmitter } = {}) {
    this.path = resolve(path);
    this.#realPath = realDbPath(path);
    this.metaPath = options.metaPath ? resolve(options.metaPath) : defaultMetaPath(this.#realPath);
    this.logger = options.logger ?? noopLogger;
    this.events = options.events ?? new LstreamEmitter();
    this.#options = {
      monitorIntervalMs: options.monitorIntervalMs ?? MONITOR_INTERVAL_MS,
      checkpointIntervalMs: options.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS,
      minCheckpointPageCount: options.minCheckpointPageCount ?? MIN_CHECKPOINT_PAGE_COUNT,
      maxCheckpointPageCount: options.maxCheckpointPageCount ?? MAX_CHECKPOINT_PAGE_COUNT,
      truncatePageCount: options.truncatePageCount ?? TRUNCATE_PAGE_COUNT,
      busyTimeoutMs: options.busyTimeoutMs ?? BUSY_TIMEOUT_MS,
      maxShadowWalBytes: options.maxShadowWalBytes ?? MAX_SHADOW_WAL_BYTES,
    };
    if (!(this.#options.minCheckpointPageCount > 0)) {
      throw new InvalidArgumentError(`min-checkpoint-page-count must be positive, got ${this.#options.minCheckpointPageCount}`);
    }
    checkNumericOptions(this.#options, ['monitorIntervalMs']);
  }

  /**
   * Adds a replica. Call before `open`. Rejects a duplicate name. The client is wrapped with
   * `instrumentClient`, so every storage call of the replica (any client, ours or a third party's)
   * emits a 'storage-op' event; `replica.client` is that wrapper, which shows every property of
   * `client` and passes every result and error through unchanged.
   */
  addReplica(client: ReplicaClient, options: ReplicaOptions = {}): Replica {
    if (this.#opened || this.#opening || this.#closed) {
      // It would never be started: nothing would ship to it, and a flush() would wait for it forever.
      throw new InvalidArgumentError(`${this.path}: add replicas before open(); this database is ${this.#closed ? 'closed' : 'open'} already`);
    }
    const name = options.name ?? client.type;
    if (this.replicas.some((r) => r.name === name)) {
      throw new InvalidArgumentError(`${this.path}: two replicas are named '${name}'; give each a unique name`);
    }
    const instrumented = instrumentClient(client, this.events, { db: this.path, replica: name });
    const r = new Replica(this, instrumented, { ...options, name });
    this.replicas.push(r);
    return r;
  }

  /** Current position of the shadow WAL (undefined until the first sync of an existing database). */
  get pos(): Pos | undefined {
    const s = this.#shadow;
    return s ? new Pos(s.generation, s.index, s.size) : undefined;
  }

  /** Database page size (0 until the database is open). */
  get pageSize(): number {
    return this.#pageSize;
  }

  /** The last sync error, cleared by a successful sync. */
  /** When the current episode of failing syncs of the database began (Date.now() ms), if it is failing. */
  get failingSince(): number | undefined {
    return this.#failingSince;
  }

  get lastError(): unknown {
    return this.#lastError;
  }

  /**
   * Returns the database's status, for status pages and metrics: file sizes (stat'ed now), the
   * shadow WAL's position and size, the last sync and its error, and every replica's status.
   * Rejects only when a file exists but cannot be examined.
   */
  async status(): Promise<DbStatus> {
    const pos = this.pos;
    const [dbf, wal, shadowWalBytes] = await Promise.all([
      statOrUndefined(this.path),
      statOrUndefined(this.walPath),
      pos ? this.#shadowWalBytes(pos.generation) : Promise.resolve(0),
    ]);
    return {
      path: this.path,
      pos,
      pageSize: this.#pageSize,
      dbBytes: Number(dbf?.size ?? 0n),
      walBytes: Number(wal?.size ?? 0n),
      shadowWalBytes,
      lastSyncAt: this.#lastSyncAt,
      lastError: this.#lastError,
      replicas: this.replicas.map((r) => r.status()),
    };
  }

  /** Sums the sizes of the shadow WAL files of `generation` (files removed meanwhile count as 0). */
  async #shadowWalBytes(generation: string): Promise<number> {
    // A new generation may have replaced this one since `pos` was read: nothing of it is left then.
    const indexes = await this.#shadowIndexes(generation);
    const sizes = await Promise.all(indexes.map(async (i) => Number((await statOrUndefined(this.shadowWalPath(generation, i)))?.size ?? 0n)));
    return sizes.reduce((a, b) => a + b, 0);
  }

  /** Path of the shadow WAL file of `index` in `generation`. */
  shadowWalPath(generation: string, index: number): string {
    return join(this.metaPath, 'generations', generation, 'wal', shadowWalName(index));
  }

  /**
   * Takes the meta directory lock, syncs once if the database exists, and starts watching it and
   * the replicas. Rejects with LockedError when another lstream replicates this database.
   */
  async open(): Promise<void> {
    if (this.#closed) throw new InvalidArgumentError(`${this.path} is closed; make a new Db to replicate it again`);
    if (this.#opened || this.#opening) throw new InvalidArgumentError(`${this.path} is already open`);
    this.#opening = true;
    try {
      await this.#openNow();
      this.#opened = true;
    } finally {
      this.#opening = false;
    }
  }

  async #openNow(): Promise<void> {
    const copies = betterSqlite3Copies();
    if (copies.others.length > 0) {
      this.logger.warn(
        'another copy of better-sqlite3 is loaded in this process: SQLite in one copy does not see the locks of the other, so a connection closed in either releases the locks of both on this database and another process may then corrupt it; install one copy (npm ls better-sqlite3)',
        { db: this.path, loaded: copies.others.join(', '), lstream: copies.ours },
      );
    }
    // The database may not exist yet, but its directory must: lstream never creates it.
    const dir = await statOrUndefined(dirname(this.path));
    if (!dir?.isDirectory()) {
      throw new DbError(`${dirname(this.path)} does not exist (it should hold the database ${basename(this.path)}); create it or fix the path`);
    }
    try {
      await mkdir(this.metaPath, { recursive: true });
    } catch (err) {
      throw new DbError(
        `cannot create lstream's directory ${this.metaPath} (${(err as NodeJS.ErrnoException).code ?? String(err)}): lstream keeps its shadow WAL there; make its parent writable for this user, or set metaPath`,
        { cause: err },
      );
    }
    try {
      this.#lock = await LockFile.acquire(join(this.metaPath, 'lock'), `database ${this.path}`, { onLost: (h) => this.#lockLost(h) });
    } catch (err) {
      if (LockedError.isInstance(err)) throw err;
      throw new DbError(`cannot take lstream's lock file in ${this.metaPath} (${(err as NodeJS.ErrnoException).code ?? String(err)}): make the directory writable for this user, or set metaPath`, {
        cause: err,
      });
    }
    let replicasStarted = false;
    try {
      await this.#removeTempFiles();
      await this.sync().catch((err: unknown) => {
        if (err instanceof DbError) throw err;
        this.#failingSince = Date.now();
        this.logger.error('initial sync failed; retrying', { db: this.path, error: String(err) });
      });
      replicasStarted = true;
      for (const r of this.replicas) r.start();
      this.#startMonitor();
    } catch (err) {
      // Nothing of this attempt stays: open() may be called again (once the cause is fixed).
      this.#stopMonitor();
      // Replicas stopped once cannot start again; they are started last, so a failure rarely gets there.
      if (replicasStarted) for (const r of this.replicas) await r.stop({ finalSync: false }).catch(() => undefined);
      await this.#closeConnection();
      this.#connectionClosed = false;
      // A restart expected from the shutdown marker is not one any more when the next attempt runs.
      this.#expectRestart = false;
      await this.#lock?.release();
      this.#lock = undefined;
      throw err;
    }
  }

  /**
   * Another lstream took the lock over while this one could not refresh it (paused longer than
   * LOCK_STALE_MS on another host or in another container): the shadow WAL and the replicas are
   * its now. This one stops at once, without a final sync, and says so.
   */
  #lockLost(holder: LockHolder): void {
    if (this.#closed || this.#lockLostError) return;
    const err = new LockedError(
      `${this.path}: another lstream took over its replication (process ${holder.pid} on ${holder.host}, since ${holder.startedAt}); this one has stopped replicating it`,
      holder,
    );
    this.#lockLostError = err;
    this.#lastError = err;
    this.#failingSince ??= Date.now();
    this.#stopMonitor();
    for (const r of this.replicas) void r.stop({ finalSync: false }).catch(() => undefined);
    // Its read transaction would keep the new holder from ever checkpointing: the WAL would grow
    // without bound.
    void this.#serial(() => this.#closeConnection()).catch(() => undefined);
    this.logger.error('lost the lock to another lstream; stopped replicating', { db: this.path, holder: `process ${holder.pid} on ${holder.host}` });
    this.events.emit('db-sync-error', { db: this.path, error: err, durationMs: 0 });
  }

  #lockLostError: LockedError | undefined;

  #startMonitor(): void {
    this.#timer = LongTimer.interval(() => this.#requestSync(), this.#options.monitorIntervalMs);
    try {
      const walName = basename(this.walPath);
      const dbName = basename(this.#realPath);
      this.#watcher = watch(dirname(this.#realPath), { persistent: false }, (_event, name) => {
        if (name === walName || name === dbName) this.#requestSync();
      });
      this.#watcher.on('error', (err) => {
        this.logger.warn('file watch failed; falling back to polling', { db: this.path, error: String(err) });
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (err) {
      this.logger.warn('file watch unavailable; polling only', { db: this.path, error: String(err) });
    }
  }

  #requestSync(): void {
    if (this.#closed) return;
    if (this.#syncing) {
      this.#dirty = true;
      return;
    }
    if (this.#kick) return;
    // While syncs fail, the next one waits a monitor interval: a failing sync can itself touch the
    // files the watcher reports (it once spun ~660 times a second on a deleted database).
    const delay = this.#failingSince === undefined ? WATCH_DEBOUNCE_MS : this.#options.monitorIntervalMs;
    this.#kick = setTimeout(() => {
      this.#kick = undefined;
      this.#syncing = true;
      this.sync()
        .then(
          () => {
            if (this.#failingSince !== undefined) {
              this.logger.info('database sync recovered', { db: this.path });
              this.#failingSince = undefined;
            }
          },
          (err: unknown) => {
            // Logged once per episode; every failure is also a 'db-sync-error' event and lastError.
            if (this.#failingSince === undefined) {
              this.#failingSince = Date.now();
              this.logger.error('database sync failed; retrying', { db: this.path, error: String(err) });
            }
          },
        )
        .finally(() => {
          this.#syncing = false;
          if (this.#dirty) {
            this.#dirty = false;
            this.#requestSync();
          }
        });
    }, delay);
    // A retry's wait never holds the process open (the monitor's timer does not either).
    if (delay > 0) this.#kick.unref();
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Copies every transaction committed so far into the shadow WAL, starting a new generation or
   * WAL index when needed, and checkpoints when the policy says so. Resolves with the position
   * reached (undefined while the database does not exist).
   */
  sync(): Promise<Pos | undefined> {
    if (this.#lockLostError) return Promise.reject(this.#lockLostError);
    if (!this.#opened && !this.#opening && !this.#closed) {
      return Promise.reject(new DbError(`${this.path} is not open: call open() first (and check that it succeeded)`));
    }
    return this.#serial(async () => {
      const started = performance.now();
      try {
        const pos = await this.#syncLocked(true);
        this.#lastError = undefined;
        return pos;
      } catch (err) {
        this.#lastError = err;
        if (err instanceof SqliteError && this.#conn && (this.#conn.failed || !err.busy)) {
          // The SQLite worker died, or SQLite failed for a reason other than lock contention (a
          // database copied over the file in place reads as another schema: "no such table"): open
          // it again on the next sync, and let the continuity check decide whether the generation
          // can go on.
          await this.#dropConnection();
        }
        this.events.emit('db-sync-error', { db: this.path, error: err, durationMs: performance.now() - started });
        throw err;
      }
    });
  }

  async #syncLocked(allowCheckpoint: boolean, retried = false): Promise<Pos | undefined> {
    const started = performance.now();
    if (this.#connectionClosed) throw new DbError(`${this.path}: the database is closed`);
    const dbStat = await statOrUndefined(this.path);
    if (this.#conn && (!dbStat || dbStat.ino !== this.#dbFile?.ino || dbStat.dev !== this.#dbFile.dev)) {
      // A database file removed or replaced (a restore over it, a copy of another one) leaves the
      // connection on the old file: drop it and start over on whatever is at the path now. That is
      // another database file: it starts a generation of its own (its WAL, even one that looks like
      // a restart, belongs to it and not to the one shipped).
      this.logger.warn(dbStat ? 'database file was replaced; reopening it' : 'database file was removed; waiting for it', { db: this.path });
      await this.#dropConnection(dbStat ? 'database file replaced' : 'database file removed');
      await this.#setAsideOldWal();
    }
    if (!this.#conn) {
      if (!dbStat) {
        if (!this.#waitingForDb) this.logger.info('database does not exist yet; waiting for it', { db: this.path });
        this.#waitingForDb = true;
        return undefined;
      }
      this.#waitingForDb = false;
      await this.#init();
    }
    const walStat = await statOrUndefined(this.walPath);
    this.#walFile = walStat ? { dev: walStat.dev, ino: walStat.ino } : undefined;
    if (!walStat || walStat.size < BigInt(WAL_HEADER_SIZE)) {
      await this.#conn!.touch();
      if (!(await statOrUndefined(this.walPath)) && !retried) {
        // lstream's read transaction keeps SQLite from deleting the WAL, and its own write just
        // made one: none at the path means the files were removed or replaced behind its back
        // (say, another database copied over this one in place), so the connection writes where
        // nobody reads. Start over on what is at the path now, in a generation of its own.
        this.logger.warn('the WAL was removed by another process; reopening the database', { db: this.path });
        await this.#dropConnection('wal removed by another process');
        return this.#syncLocked(allowCheckpoint, true);
      }
    }

    const before = this.#shadow ? new Pos(this.#shadow.generation, this.#shadow.index, this.#shadow.size) : undefined;
    const copiedBefore = this.#copiedBytes;
    await this.#verifyAndCopy();
    if (allowCheckpoint) await this.#maybeCheckpoint();
    const copied = this.#copiedBytes - copiedBefore;

    const pos = this.pos!;
    const advanced = !before || comparePos(before, pos) !== 0;
    const [wal, dbf] = await Promise.all([statOrUndefined(this.walPath), statOrUndefined(this.path)]);
    this.#lastSyncAt = new Date();
    this.events.emit('db-sync', {
      db: this.path,
      pos,
      advanced,
      bytes: copied,
      walBytes: Number(wal?.size ?? 0n),
      dbBytes: Number(dbf?.size ?? 0n),
      durationMs: performance.now() - started,
    });
    if (advanced) this.#notifyReplicas();
    return pos;
  }

  /** One buffer for every WAL copy: copies are serialised, and reusing it keeps memory flat. */
  #copyBuffer(): Buffer {
    const need = Math.max(COPY_CHUNK_BYTES, walFrameSize(this.#pageSize || 65_536));
    if (!this.#copyBuf || this.#copyBuf.length < need) this.#copyBuf = Buffer.allocUnsafe(need);
    return this.#copyBuf;
  }

  #notifyReplicas(): void {
    for (const r of this.replicas) r.notify();
  }

  async #init(): Promise<void> {
    // Taken before SQLite opens the path: should the file be replaced in between, the next sync
    // sees the path name another file than this one and starts over.
    this.#realPath = realDbPath(this.path);
    let file: DatabaseFile;
    try {
      file = await DatabaseFile.acquire(this.#realPath);
    } catch (err) {
      throw new DbError(`cannot open the database for replication: ${(err as Error).message}`, { cause: err });
    }
    let opened: Awaited<ReturnType<typeof SqliteConnection.open>>;
    try {
      opened = await SqliteConnection.open(this.path, this.#options.busyTimeoutMs);
    } catch (err) {
      await file.release();
      // Lock contention at startup (the app holds the write lock) is retried by the monitor.
      if (err instanceof SqliteError && err.busy) throw err;
      throw new DbError(`cannot open the database for replication: ${(err as Error).message}`, { cause: err });
    }
    this.#conn = opened.conn;
    this.#pageSize = opened.pageSize;
    this.#dbFile = file;
    await this.#loadShadow();
  }

  /** Restores the shadow position from the meta directory, if a generation is there. */
  async #loadShadow(): Promise<void> {
    let generation: string;
    try {
      generation = (await readFile(join(this.metaPath, 'generation'), 'utf8')).trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    if (!isGenerationName(generation)) return;
    const index = (await this.#shadowIndexes(generation)).at(-1);
    if (index === undefined) return;
    const path = this.shadowWalPath(generation, index);
    const fh = await open(path, 'r+');
    try {
      const size = Number((await fh.stat()).size);
      if (size < WAL_HEADER_SIZE) return;
      const headerBytes = await readAt(fh, 0, WAL_HEADER_SIZE);
      const header = parseWalHeader(headerBytes);
      if (header.pageSize !== this.#pageSize) {
        this.#noShadowReason = `the database's page size changed from ${header.pageSize} to ${this.#pageSize}`;
        return;
      }
      // Find the end of the last whole transaction: a crash may have left uncommitted frames.
      const aligned = frameAlign(size, header.pageSize);
      const { end, checksum } = await this.#scanCommitted(fh, header, WAL_HEADER_SIZE, [header.checksum1, header.checksum2], aligned);
      if (end !== size) {
        await fh.truncate(end);
        await fh.sync();
      }
      this.#shadow = { generation, index, header, headerBytes, size: end, checksum };
    } finally {
      await fh.close();
    }
    // A clean close recorded the database file it left; if nothing touched it since, the WAL
    // SQLite may have deleted on that close was fully shipped, and a new WAL is a new index.
    const markerPath = join(this.metaPath, 'shutdown');
    try {
      const marker = JSON.parse(await readFile(markerPath, 'utf8')) as ShutdownMarker;
      const st = await statOrUndefined(this.path);
      if (
        st &&
        marker.generation === generation &&
        marker.index === this.#shadow.index &&
        marker.shadowSize === this.#shadow.size &&
        marker.dbSize === Number(st.size) &&
        marker.dbMtimeNs === st.mtimeNs.toString() &&
        marker.dbIno === Number(st.ino)
      ) {
        this.#expectRestart = true;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
    await rm(markerPath, { force: true });
  }

  /**
   * Checks that the shadow WAL still continues the real WAL, then copies the newly committed
   * frames. Starts a new index after lstream's own checkpoint restarted the WAL, and a new
   * generation when continuity is lost for any other reason.
   */
  async #verifyAndCopy(): Promise<void> {
    const fh = await open(this.walPath, 'r');
    try {
      const walSize = Number((await fh.stat()).size);
      const realHeaderBytes = walSize >= WAL_HEADER_SIZE ? await readAt(fh, 0, WAL_HEADER_SIZE) : undefined;
      const reason = await this.#continuityBreak(fh, walSize, realHeaderBytes);
      if (reason === 'restarted') {
        await this.#startIndex(this.#shadow!.generation, this.#shadow!.index + 1, realHeaderBytes!);
        this.#expectRestart = false;
      } else if (reason !== undefined) {
        await this.#createGeneration(reason, realHeaderBytes!);
        this.#expectRestart = false;
      }
      const before = this.#shadow!.size;
      await this.#copy(fh, walSize);
      // New frames in the same WAL: it was not restarted, and cannot be until lstream's next complete
      // checkpoint. Until then a restart (by lstream's own write or the app's) is expected.
      if (this.#shadow!.size !== before) this.#expectRestart = false;
    } finally {
      await fh.close();
    }
  }

  /** Returns why the shadow WAL no longer continues the WAL ('restarted' when that is expected), or undefined. */
  async #continuityBreak(fh: FileHandle, walSize: number, realHeader: Buffer | undefined): Promise<string | undefined> {
    const s = this.#shadow;
    if (!realHeader) throw new DbError(`${this.walPath}: WAL is missing after writing to the database`);
    parseWalHeader(realHeader); // throws WalFormatError on a bad header
    if (!s) return this.#noShadowReason ?? 'no generation exists';
    if (this.#replaced) return this.#replaced;
    if (s.index >= MAX_WAL_INDEX) return 'max index exceeded';
    if (!(await statOrUndefined(this.shadowWalPath(s.generation, s.index)))) return 'shadow wal missing';
    if (!realHeader.equals(s.headerBytes)) {
      return this.#expectRestart ? 'restarted' : 'wal header mismatch: the WAL was restarted by another process';
    }
    if (frameAlign(walSize, this.#pageSize) < s.size) {
      return this.#expectRestart ? 'restarted' : 'wal truncated by another process';
    }
    if (s.size > WAL_HEADER_SIZE) {
      const frameSize = walFrameSize(this.#pageSize);
      const real = await readAt(fh, s.size - frameSize, frameSize);
      const shadow = await readFileRange(this.shadowWalPath(s.generation, s.index), s.size - frameSize, frameSize);
      if (!shadow || !real.equals(shadow)) return 'wal overwritten by another process';
    }
    return undefined;
  }

  /** The last generation this process began (none of its files can be in any replica's storage before this process put them there). */
  #begunHere: string | undefined;

  async #createGeneration(reason: string, realHeader: Buffer): Promise<void> {
    const generation = newGenerationName();
    this.#begunHere = generation;
    const old = this.#shadow?.generation;
    await mkdir(join(this.metaPath, 'generations', generation, 'wal'), { recursive: true });
    await this.#startIndex(generation, 0, realHeader);
    await writeFileAtomic(join(this.metaPath, 'generation'), `${generation}\n`);
    this.#replaced = undefined;
    this.#noShadowReason = undefined;
    this.logger.info('new generation', { db: this.path, generation, reason, previous: old });
    this.events.emit('generation', { db: this.path, generation, reason });
    // What replicas have yet to ship of the generation left behind stays until they have (cleanShadow).
    const shipping = new Set(this.replicas.flatMap((r) => (r.pos ? [r.pos.generation] : [])));
    await this.#removeOtherGenerations(generation, shipping);
  }

  /**
   * fsyncs the current shadow file when it has unsynced writes. With `missingOk`, a shadow file
   * that is gone (its directory removed behind lstream's back) is nothing to sync: a generation
   * replacing it is starting.
   */
  async #fsyncShadow(missingOk = false): Promise<void> {
    const s = this.#shadow;
    if (!s || !this.#shadowDirty) return;
    let fh: FileHandle;
    try {
      fh = await open(this.shadowWalPath(s.generation, s.index), 'r+');
    } catch (err) {
      if (!missingOk || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.#shadowDirty = false;
      return;
    }
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    this.#shadowDirty = false;
  }

  /** Starts shadow file `index` with the WAL's header; its frames are copied next. */
  async #startIndex(generation: string, index: number, headerBytes: Buffer): Promise<void> {
    // The previous file is complete: make it durable before moving on (unless it belongs to a
    // generation being left, whose files may be gone: that is why one starts).
    await this.#fsyncShadow(generation !== this.#shadow?.generation);
    const header = parseWalHeader(headerBytes);
    if (header.pageSize !== this.#pageSize) {
      throw new DbError(`${this.walPath}: WAL page size ${header.pageSize} differs from the database's ${this.#pageSize}`);
    }
    const path = this.shadowWalPath(generation, index);
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(path, 'w', 0o644);
    try {
      await writeAt(fh, headerBytes.subarray(0, WAL_HEADER_SIZE), 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncDir(dirname(path));
    this.#shadow = {
      generation,
      index,
      header,
      headerBytes: Buffer.from(headerBytes),
      size: WAL_HEADER_SIZE,
      checksum: [header.checksum1, header.checksum2],
    };
  }

  /**
   * Appends the WAL's verified, committed frames after the shadow's end to the shadow file. The
   * first pass finds the end of the last whole transaction (salts and checksum chain); the second
   * copies exactly those bytes, so an open transaction is never written to the shadow.
   */
  async #copy(fh: FileHandle, walSize: number): Promise<void> {
    const s = this.#shadow!;
    const end = frameAlign(walSize, this.#pageSize);
    if (end <= s.size) return;
    const { end: committed, checksum } = await this.#scanCommitted(fh, s.header, s.size, s.checksum, end);
    if (committed === s.size) return;
    const chunkBytes = this.#chunkBytes();
    if (committed > MAX_WAL_OFFSET + 1) {
      // Segment names hold 8 hex digits; lstream restarts the WAL long before this.
      throw this.#copyError('too large');
    }
    const out = await open(this.shadowWalPath(s.generation, s.index), 'r+');
    try {
      for (let off = s.size; off < committed; ) {
        const chunk = await readAt(fh, off, Math.min(chunkBytes, committed - off), this.#copyBuffer());
        if (chunk.length === 0) throw this.#copyError('shrank');
        // Whole or not at all: a short write (a nearly full disk) left the rest of the range as the
        // zeros truncate() extends the file with, and a segment that failed its checksum shipped.
        await writeAt(out, chunk, off).catch((err: unknown) => {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'ENOSPC' && code !== 'EDQUOT') throw err;
          // Not a DbError: that would fail open(); a full disk is retried until there is room.
          throw new LstreamError(code, `no space left to copy the WAL into ${this.shadowWalPath(s.generation, s.index)}: free space on that file system; lstream retries`, { cause: err });
        });
        off += chunk.length;
      }
      await out.truncate(committed);
      // Not fsynced here: until lstream restarts the WAL, SQLite's own WAL still holds these frames,
      // and a shadow tail lost to an OS crash is found and cut off by the chain check at the next
      // start. #checkpoint fsyncs before the WAL restart makes the shadow the only copy.
      this.#shadowDirty = true;
    } finally {
      await out.close();
    }
    this.#copiedBytes += committed - s.size;
    s.size = committed;
    s.checksum = checksum;
  }

  /** Why a copy of the WAL to the shadow WAL (on this thread or in the worker) had to stop. */
  #copyError(problem: 'too large' | 'shrank'): DbError {
    return new DbError(
      problem === 'shrank'
        ? `${this.walPath}: WAL shrank while being copied`
        : `${this.walPath}: WAL exceeds 4 GiB: lstream restarts the WAL long before that, so its checkpoints could not run (another process holding a read transaction open, or this process too busy to copy the WAL)`,
    );
  }

  /** Bytes per read while scanning or copying a WAL: whole frames, at least one. */
  #chunkBytes(): number {
    const frameSize = walFrameSize(this.#pageSize);
    return Math.max(frameSize, COPY_CHUNK_BYTES - (COPY_CHUNK_BYTES % frameSize));
  }

  /**
   * Reads frames of a WAL (or shadow WAL) from `start` (with the chain value `checksum` there) up to
   * `end`, and returns the end of the last whole transaction whose frames continue the salt and
   * checksum chain, with the chain value at that point. Stops at the first frame that does not.
   */
  async #scanCommitted(
    fh: FileHandle,
    header: WalHeader,
    start: number,
    checksum: [number, number],
    end: number,
  ): Promise<{ end: number; checksum: [number, number] }> {
    const frameSize = walFrameSize(header.pageSize);
    const chunkBytes = this.#chunkBytes();
    const chain = new WalChain(header, checksum);
    let committed = start;
    let committedChecksum = checksum;
    for (let off = start; off < end; ) {
      const chunk = await readAt(fh, off, Math.min(chunkBytes, end - off), this.#copyBuffer());
      let p = 0;
      for (; p + frameSize <= chunk.length; p += frameSize) {
        const frame = chunk.subarray(p, p + frameSize);
        const h = parseWalFrameHeader(frame);
        if (chain.verify(frame, h) !== 'ok') return { end: committed, checksum: committedChecksum };
        if (h.commitSize !== 0) {
          committed = off + p + frameSize;
          committedChecksum = chain.checksum;
        }
      }
      if (p === 0) break;
      off += p;
    }
    return { end: committed, checksum: committedChecksum };
  }

  async #maybeCheckpoint(): Promise<void> {
    const s = this.#shadow;
    if (!s || this.#snapshotting > 0) return;
    const ps = this.#pageSize;
    if (s.size <= WAL_HEADER_SIZE) return;
    const walStat = await statOrUndefined(this.walPath);
    const walFile = Number(walStat?.size ?? 0n);
    let mode: CheckpointMode | undefined;
    const o = this.#options;
    if (o.truncatePageCount > 0 && walFile >= walSizeForFrames(ps, o.truncatePageCount)) mode = 'TRUNCATE';
    else if (o.maxCheckpointPageCount > 0 && s.size >= walSizeForFrames(ps, o.maxCheckpointPageCount)) mode = 'RESTART';
    else if (s.size >= walSizeForFrames(ps, o.minCheckpointPageCount)) mode = 'PASSIVE';
    else if (o.checkpointIntervalMs > 0 && Date.now() - this.#lastCheckpointAt > o.checkpointIntervalMs && s.size > WAL_HEADER_SIZE + walFrameSize(ps)) {
      mode = 'PASSIVE';
    }
    // Every 0x7fffffff-byte boundary is far below 4 GiB; restart long before names would overflow.
    if (!mode && s.size > MAX_WAL_OFFSET / 2) mode = 'RESTART';
    if (mode) await this.#checkpoint(mode);
  }

  /**
   * Runs the locked part of a checkpoint in the SQLite worker (`SqliteConnection.lockedCheckpoint`):
   * the write lock is taken there, the WAL's last commits copied to the shadow file and fsynced, the
   * checkpoint run and the lock released, without waiting for this thread. An app writing to the
   * same database from this thread blocks it while it waits for the lock, so a lock held across
   * turns of the event loop (awaiting file reads here) held the app for its whole busy timeout and
   * failed its write. Resolves undefined when the app holds the lock past lstream's busy timeout.
   */
  async #lockedCheckpoint(statDb: boolean) {
    const s = this.#shadow!;
    const r = await this.#conn!.lockedCheckpoint({
      walPath: this.walPath,
      shadowPath: this.shadowWalPath(s.generation, s.index),
      dbPath: this.#realPath,
      pageSize: this.#pageSize,
      start: s.size,
      chain: s.checksum,
      salt1: s.header.salt1,
      salt2: s.header.salt2,
      bigEndian: s.header.bigEndianChecksum,
      maxEnd: MAX_WAL_OFFSET + 1,
      shadowDirty: this.#shadowDirty,
      statDb,
    });
    // What was copied counts whatever happened next.
    if (r.end !== s.size) {
      this.#copiedBytes += r.end - s.size;
      s.size = r.end;
      s.checksum = r.chain;
      this.#shadowDirty = true;
    }
    if (r.synced) this.#shadowDirty = false;
    if (r.problem === 'io') {
      throw new LstreamError(r.code ?? 'EIO', `${r.message ?? 'I/O error'} (copying the WAL's last commits for a checkpoint; lstream retries)`);
    }
    if (r.problem !== undefined) throw this.#copyError(r.problem);
    if (!r.locked) return undefined;
    return r;
  }

  /**
   * Checkpoints without ever losing a frame: the write lock is held from the last copy of the WAL
   * until the checkpoint has finished, so no commit can land in between; if the checkpoint emptied
   * the WAL, lstream's own write then restarts it and the next copy starts a new index.
   */
  async #checkpoint(mode: CheckpointMode): Promise<boolean> {
    const conn = this.#conn!;
    const started = performance.now();
    let complete = false;
    try {
      const r = await this.#lockedCheckpoint(false);
      if (!r) {
        this.logger.debug('checkpoint skipped: the database is busy', { db: this.path, mode });
        return false;
      }
      complete = !r.busy && r.log === r.checkpointed && r.log! > 0;
      this.#expectRestart = complete;
      this.#lastCheckpointAt = Date.now();
      if (complete) await conn.restart(mode === 'TRUNCATE');
      this.events.emit('checkpoint', { db: this.path, mode, durationMs: performance.now() - started });
      if (complete) {
        // Pick up the restarted WAL now, so the new index starts with lstream's own frame.
        await this.#verifyAndCopy();
        this.#notifyReplicas();
        // Replicas may be failing: the cap on unshipped shadow files applies all the same.
        await this.cleanShadow();
      }
      return complete;
    } catch (err) {
      this.events.emit('checkpoint', { db: this.path, mode, durationMs: performance.now() - started, error: err });
      throw err;
    }
  }

  /**
   * Runs `fn` with checkpoints paused after making the WAL as short as possible (a checkpoint and
   * restart), so the database file is stable and the snapshot is at the start of a WAL index.
   * `fn` receives the position the database file plus that index's WAL reproduce, and the one
   * descriptor through which lstream reads the database file: read it at explicit positions and
   * never close it (closing any descriptor of the file would drop the locks SQLite's connections in
   * this process hold on it; see database-file.ts).
   */
  async withSnapshotLock<T>(fn: (pos: Pos, file: FileHandle) => Promise<T>): Promise<T> {
    if (this.#connectionClosed) {
      throw new DbError(`${this.path}: a snapshot was needed (a replica lost its chain or never got its first snapshot) after the database was closed; it is taken at the next start`);
    }
    const locked = await this.#serial(async () => {
      let p = await this.#syncLocked(false);
      if (!p) throw new DbError(`${this.path}: cannot snapshot a database that does not exist yet`);
      if (this.#snapshotting === 0 && p.offset > WAL_HEADER_SIZE && (await this.#checkpoint('PASSIVE'))) {
        p = this.pos!;
      }
      this.#snapshotting++;
      // Held by fn: a connection dropped meanwhile (the file replaced) leaves it open until fn ends.
      return { pos: p, file: this.#dbFile!.retain() };
    });
    try {
      return await fn(locked.pos, locked.file.fh);
    } finally {
      this.#snapshotting--;
      await locked.file.release();
    }
  }

  /**
   * Returns the size of shadow file `index` of `generation` in whole frames (undefined when it is
   * gone). A file of a generation the database has left is measured by its own WAL header's page
   * size: a database replaced by another may have another page size.
   */
  async shadowSize(generation: string, index: number): Promise<number | undefined> {
    const s = this.#shadow;
    if (s && s.generation === generation && s.index === index) return s.size;
    const path = this.shadowWalPath(generation, index);
    if (s && s.generation === generation) {
      const st = await statOrUndefined(path);
      return st ? frameAlign(Number(st.size), this.#pageSize) : undefined;
    }
    // Files of a generation left behind no longer change.
    const [st, head] = await Promise.all([statOrUndefined(path), readFileRange(path, 0, WAL_HEADER_SIZE)]);
    if (!st || !head || head.length < WAL_HEADER_SIZE) return undefined;
    return frameAlign(Number(st.size), parseWalHeader(head).pageSize);
  }

  /**
   * The end of what the shadow WAL still holds of `generation`, a generation the database has
   * left (its last file's size in whole frames), or undefined when none of it is left. Replicas
   * ship it before following the database to its new generation.
   */
  async shadowEnd(generation: string): Promise<Pos | undefined> {
    const indexes = await this.#shadowIndexes(generation);
    for (const index of indexes.reverse()) {
      const size = await this.shadowSize(generation, index);
      if (size !== undefined) return new Pos(generation, index, size);
    }
    return undefined;
  }

  /** Indexes of the shadow WAL files of `generation`, ascending (none when its directory is gone). */
  async #shadowIndexes(generation: string): Promise<number[]> {
    let names: string[];
    try {
      names = await readdir(join(this.metaPath, 'generations', generation, 'wal'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return names
      .filter((n) => /^[0-9a-f]{8}\.wal$/.test(n))
      .map((n) => parseInt(n.slice(0, 8), 16))
      .sort((a, b) => a - b);
  }

  /**
   * Removes shadow WAL files every replica has shipped, and the oldest ones beyond the size cap
   * (warning, and making the replicas that needed them take a snapshot). Files of generations the
   * database has left stay while a replica still has them to ship (commits made just before a
   * new generation began), within the same cap.
   */
  async cleanShadow(): Promise<void> {
    const s = this.#shadow;
    if (!s) return;
    let keepFrom = s.index;
    /** Generations left behind that a replica is still in: the first index it needs of each. */
    const left = new Map<string, number>();
    for (const r of this.replicas) {
      const p = r.pos;
      // A replica that has not reached storage yet may still continue from older files (only the
      // cap removes them), unless this process began the generation: no storage holds it then, and
      // the replica starts it with a snapshot, so it needs nothing before the current file.
      if (!p) {
        if (s.generation !== this.#begunHere) keepFrom = 0;
      }
      else if (p.generation === s.generation) keepFrom = Math.min(keepFrom, p.index);
      else left.set(p.generation, Math.min(left.get(p.generation) ?? p.index, p.index));
    }
    await this.#removeOtherGenerations(s.generation, new Set(left.keys()));
    const files: { generation: string; index: number; size: number }[] = [];
    const gather = async (generation: string, from: number, before: number): Promise<void> => {
      for (const index of await this.#shadowIndexes(generation)) {
        if (index >= before) continue;
        const path = this.shadowWalPath(generation, index);
        if (index < from) {
          await rm(path, { force: true });
          continue;
        }
        const st = await statOrUndefined(path);
        if (st) files.push({ generation, index, size: Number(st.size) });
      }
    };
    // Oldest first: generations left behind (in the order replicas left them does not matter: each
    // is needed by a replica that has yet to ship it), then the current one.
    for (const [generation, from] of left) await gather(generation, from, Infinity);
    await gather(s.generation, keepFrom, s.index);
    let total = files.reduce((a, f) => a + f.size, 0);
    for (const f of files) {
      if (total <= this.#options.maxShadowWalBytes) break;
      this.logger.warn('shadow WAL exceeds its cap; dropping unshipped files, lagging replicas will take a new snapshot', {
        db: this.path,
        generation: f.generation,
        index: f.index,
        capBytes: this.#options.maxShadowWalBytes,
      });
      await rm(this.shadowWalPath(f.generation, f.index), { force: true });
      total -= f.size;
      this.events.emit('shadow-dropped', { db: this.path, generation: f.generation, index: f.index, bytes: f.size });
    }
  }

  /** Removes the shadow directories of every generation but `keep` and those in `alsoKeep`. */
  async #removeOtherGenerations(keep: string, alsoKeep: ReadonlySet<string>): Promise<void> {
    const dir = join(this.metaPath, 'generations');
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const n of names) if (n !== keep && !alsoKeep.has(n)) await rm(join(dir, n), { recursive: true, force: true });
  }

  async #removeTempFiles(): Promise<void> {
    const walk = async (dir: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else if (e.name.endsWith('.tmp')) await rm(p, { force: true });
      }
    };
    await walk(this.metaPath);
  }

  /** Syncs the database and resolves once every replica holds everything committed so far. */
  async flush(signal?: AbortSignal): Promise<Pos | undefined> {
    const pos = await this.sync();
    if (!pos) return undefined;
    const waits = this.replicas.map((r) => r.waitFor(pos, signal));
    for (const r of this.replicas) r.syncNow();
    await Promise.all(waits);
    return pos;
  }

  /**
   * Stops watching, makes a final sync of the database and of every replica, and closes. A clean
   * close lets the next start continue the same generation even if SQLite removes the WAL.
   */
  close(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#closing ??= this.#closeNow(options);
    return this.#closing;
  }

  async #closeNow(options: { signal?: AbortSignal }): Promise<void> {
    this.#closed = true;
    this.#stopMonitor();
    for (const r of this.replicas) r.stopTimers();
    let finalError: unknown = this.#lockLostError;
    let marker: ShutdownMarker | undefined;
    await this.#serial(async () => {
      const conn = this.#conn;
      // Taken over by another lstream: nothing here is this one's to sync any more.
      if (!conn || this.#lockLostError) return;
      // The final copy and a complete checkpoint happen under the write lock, and the database
      // file is recorded then: everything in it has been copied. If the file is still the same at
      // the next start, nothing was committed and checkpointed while lstream was away, and the
      // generation can go on even if SQLite removed the WAL when the last connection closed.
      // Copied first without the lock; the worker then takes it for the last commits and the
      // checkpoint (see #lockedCheckpoint).
      await this.#syncLocked(false);
      // The database was removed or replaced meanwhile: there is nothing left to checkpoint.
      if (!this.#conn || !this.#shadow) return;
      const r = await this.#lockedCheckpoint(true);
      if (r && !r.busy && r.log === r.checkpointed && r.db) {
        const s = this.#shadow!;
        marker = { generation: s.generation, index: s.index, shadowSize: s.size, dbSize: Number(r.db.size), dbMtimeNs: r.db.mtimeNs, dbIno: Number(r.db.ino) };
      }
    }).catch((err: unknown) => {
      finalError = err;
    });
    await this.#serial(() => this.#closeConnection()).catch((err: unknown) => {
      finalError ??= err;
    });
    // Every replica makes its final sync of what the shadow WAL holds, independently: one failing
    // replica (storage down, deadline reached) never costs another its last commits.
    const copied = finalError === undefined;
    const stops = await Promise.allSettled(this.replicas.map((r) => r.stop({ finalSync: copied, signal: options.signal })));
    for (const s of stops) if (s.status === 'rejected') finalError ??= s.reason;
    try {
      // Written once the database side is complete, whatever the replicas did: a replica that failed
      // its final sync resumes from what its storage holds, out of the shadow WAL kept for it, in the
      // same generation (without the marker, every start after it began a new one).
      if (copied && marker) await writeFileAtomic(join(this.metaPath, 'shutdown'), JSON.stringify(marker) + '\n');
    } finally {
      await this.#lock?.release();
      this.#lock = undefined;
    }
    if (finalError !== undefined) throw finalError;
  }

  #stopMonitor(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#timer?.clear();
    if (this.#kick) clearTimeout(this.#kick);
  }

  /**
   * Closes the connection so the next sync opens the database again, where the continuity check
   * decides whether the generation goes on: a restart lstream expected no longer is one, and with
   * `replaced` (why the file at the path is another one) the next sync starts a generation.
   */
  /** The `-wal` file the connection had open at the last sync (SQLite reopens it by path). */
  #walFile: { dev: bigint; ino: bigint } | undefined;

  /**
   * After the database file was replaced or removed: the `-wal` file at the path, when it is the
   * one the old database's connections had open, belongs to the old database. Its app closed, but
   * lstream's connection kept SQLite from deleting it; left there, the next connection to whatever
   * database is at the path (lstream's, or the app's) would apply its frames to that file and
   * corrupt it. It goes into the meta directory instead, kept, not deleted.
   */
  async #setAsideOldWal(): Promise<void> {
    const old = this.#walFile;
    this.#walFile = undefined;
    if (old === undefined) return;
    const st = await statOrUndefined(this.walPath);
    if (!st || st.dev !== old.dev || st.ino !== old.ino) return;
    const aside = join(this.metaPath, `replaced-${new Date().toISOString().replace(/[:.]/g, '-')}.wal`);
    await mkdir(this.metaPath, { recursive: true });
    // (The -shm stays: the first connection to open the database next resets it, finding no WAL.)
    await rename(this.walPath, aside);
    this.logger.warn("moved the replaced database's WAL aside, so that it is not applied to the database now at the path", {
      db: this.path,
      wal: aside,
    });
  }

  async #dropConnection(replaced?: string): Promise<void> {
    const old = this.#conn;
    const file = this.#dbFile;
    this.#conn = undefined;
    this.#dbFile = undefined;
    this.#expectRestart = false;
    if (replaced !== undefined) this.#replaced = replaced;
    await old?.close().catch(() => undefined);
    await file?.release();
  }

  async #closeConnection(): Promise<void> {
    this.#connectionClosed = true;
    const conn = this.#conn;
    const file = this.#dbFile;
    this.#conn = undefined;
    this.#dbFile = undefined;
    try {
      if (conn) await conn.close();
    } finally {
      await file?.release();
    }
  }
}
