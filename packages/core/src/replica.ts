import { setMaxListeners } from 'node:events';
import { LZ4_DEFAULT_BLOCK_SIZE, readFileChunks } from '@ls/wal';
import type { ReplicaClient } from './client.js';
import type { Db } from './db.js';
import { AccessDeniedError, CorruptDataError, isAbortError, isRetryable, LstreamError, raceAbort, ReplicaError } from './errors.js';
import { readRange } from './fs-util.js';
import { walSegmentKey, type SnapshotInfo, type WalSegmentInfo } from './layout.js';
import type { Logger } from './logger.js';
import {
  checkNumericOptions,
  RETENTION_CHECK_INTERVAL_MS,
  RETENTION_MS,
  SYNC_INTERVAL_MS,
  type ReplicaOptions,
} from './options.js';
import { Pos, comparePos } from './pos.js';
import {
  collect,
  deleteGeneration,
  deleteSnapshot,
  deleteWalSegments,
  listGenerations,
  listSnapshots,
  listWalSegments,
  openWalSegment,
  writeSnapshot,
  writeWalSegment,
} from './replica-store.js';
import { backoffDelay, sleep } from './retry.js';
import { LongTimer, MAX_DELAY_MS } from './timers.js';
import { validateReplica } from './validate.js';

/** Longest wait between two attempts of a failing replica. */
const MAX_RETRY_DELAY_MS = 10_000;
/** Default `failureLogIntervalMs`: how often a replica whose syncs keep failing says so again. */
const FAILURE_LOG_INTERVAL_MS = 60_000;
/** Default `slowSyncMs`: a sync running longer (and longer than three sync intervals) is reported. */
const SLOW_SYNC_MS = 15_000;
/** Positions past a replica whose first-seen time its lag clock keeps (see #updatePending). */
const MAX_LAG_MARKS = 1024;

interface Waiter {
  pos: Pos;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** Status of a replica, for status pages and metrics. */
export interface ReplicaStatus {
  name: string;
  type: string;
  /** Position durable in storage (undefined before the first sync). */
  pos: Pos | undefined;
  lastSyncAt: Date | undefined;
  lastError: unknown;
  /**
   * When the database's shadow WAL first moved past this replica's position since it was last caught
   * up: about the time of the oldest commit not yet durable here (undefined when caught up).
   */
  pendingSince: Date | undefined;
  /** Milliseconds since `pendingSince`: how far behind the database this replica is; 0 when caught up. */
  lagMs: number;
}

/**
 * One destination of a database: ships each new committed range of the shadow WAL as one segment at
 * its exact position, takes snapshots, enforces retention and optionally validates. Uploads are
 * throttled by `syncIntervalMs` (0 ships every commit). Failures are retried with backoff forever,
 * logged once per episode, and the replica resumes from what storage really holds.
 */
export class Replica {
  readonly name: string;
  readonly #options: Required<Omit<ReplicaOptions, 'name'>>;
  readonly #logger: Logger;
  #pos: Pos | undefined;
  /** `#pos` was read from (or written to) storage by this process. */
  #verified = false;
  #lastUploadStartedAt = 0;
  /** How much earlier than the interval the next upload starts (from recent upload durations). */
  #lastUploadMs = 0;
  /** Durations of the last uploads, in milliseconds. */
  readonly #uploadMs: number[] = [];
  #lastSyncAt: Date | undefined;
  #pendingSince: Date | undefined;
  #lastError: unknown;
  #failures = 0;
  /** When the current run of failed syncs began, and when it was last logged. */
  #failingSince = 0;
  #failureLoggedAt = 0;
  #running: Promise<void> | undefined;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #snapshotTimer: LongTimer | undefined;
  #retentionTimer: LongTimer | undefined;
  #validationTimer: LongTimer | undefined;
  #started = false;
  /** No new background work starts (set by stopTimers). */
  #stopping = false;
  #stopped = false;
  #needSnapshot = false;
  #waiters: Waiter[] = [];
  #keepAlive: NodeJS.Timeout | undefined;
  /** Aborts this replica's storage calls on stop; uploads, snapshots, retention and validation all listen on it. */
  #abort = replicaAbortController();

  constructor(
    readonly db: Db,
    readonly client: ReplicaClient,
    options: ReplicaOptions & { name: string },
  ) {
    this.name = options.name;
    this.#logger = db.logger;
    this.#options = {
      syncIntervalMs: options.syncIntervalMs ?? SYNC_INTERVAL_MS,
      snapshotIntervalMs: options.snapshotIntervalMs ?? 0,
      retentionMs: options.retentionMs ?? RETENTION_MS,
      retentionCheckIntervalMs: options.retentionCheckIntervalMs ?? RETENTION_CHECK_INTERVAL_MS,
      validationIntervalMs: options.validationIntervalMs ?? 0,
      slowSyncMs: options.slowSyncMs ?? SLOW_SYNC_MS,
      failureLogIntervalMs: options.failureLogIntervalMs ?? FAILURE_LOG_INTERVAL_MS,
    };
    checkNumericOptions(this.#options, ['retentionCheckIntervalMs', 'slowSyncMs', 'failureLogIntervalMs']);
  }

  /** Position durable in this replica's storage, as far as this process knows. */
  get pos(): Pos | undefined {
    return this.#pos;
  }

  /** Returns the replica's status. */
  status(): ReplicaStatus {
    const pendingSince = this.#pendingSince;
    return {
      name: this.name,
      type: this.client.type,
      pos: this.#pos,
      lastSyncAt: this.#lastSyncAt,
      lastError: this.#lastError,
      pendingSince,
      lagMs: this.#lagMs(pendingSince),
    };
  }

  /**
   * Time since the oldest commit not yet durable here: since the database moved past this replica,
   * or since the database's own syncs began failing (its commits then never reach the shadow WAL,
   * so the replica cannot know it is behind, yet they are not durable anywhere).
   */
  #lagMs(pendingSince: Date | undefined): number {
    const now = Date.now();
    const replicaLag = pendingSince ? now - pendingSince.getTime() : 0;
    const failing = this.db.failingSince;
    return Math.max(0, replicaLag, failing !== undefined ? now - failing : 0);
  }

  /** True when the database's shadow WAL holds something this replica does not (another generation counts). */
  #behind(): boolean {
    const dpos = this.db.pos;
    const pos = this.#pos;
    if (!dpos) return false;
    return !pos || pos.generation !== dpos.generation || comparePos(pos, dpos) < 0;
  }

  /**
   * Keeps the lag clock: the time the database was first seen at each position past this replica
   * (`#marks`, oldest first), so that once the replica reaches one of them the clock restarts from
   * the next, the time of the oldest commit it still lacks. (Restarting only when fully caught up
   * made a replica of a database written without pause look ever further behind, though each sync
   * shipped everything older than one interval.)
   */
  #updatePending(): void {
    if (!this.#behind()) {
      this.#pendingSince = undefined;
      this.#marks = [];
      return;
    }
    const dpos = this.db.pos!;
    const pos = this.#pos;
    const marks = this.#marks;
    // Marks the replica holds no longer count; nor do those of a generation it has left behind.
    let held = 0;
    while (
      held < marks.length &&
      pos !== undefined &&
      (marks[held]!.pos.generation === pos.generation ? comparePos(marks[held]!.pos, pos) <= 0 : pos.generation === dpos.generation)
    ) {
      held++;
    }
    if (held > 0) marks.splice(0, held);
    const last = marks.at(-1);
    if (last === undefined || comparePos(last.pos, dpos) !== 0) {
      // Past the cap, the newest mark moves on and keeps its time: the lag can only read high.
      if (last !== undefined && marks.length >= MAX_LAG_MARKS) last.pos = dpos;
      else marks.push({ pos: dpos, at: Date.now() });
    }
    this.#pendingSince = new Date(marks[0]!.at);
  }

  /** When the database was first seen at each position past this replica, oldest first. */
  #marks: { pos: Pos; at: number }[] = [];

  /** Starts the timers: sync on notification, snapshots, retention and validation. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.notify();
    const o = this.#options;
    if (o.snapshotIntervalMs > 0) this.#scheduleFirstSnapshot();
    if (o.retentionMs > 0) {
      const every = Math.max(1_000, Math.min(o.retentionCheckIntervalMs, o.retentionMs));
      this.#retentionTimer = LongTimer.interval(() => void this.#background('retention', () => this.enforceRetention()), every);
    }
    if (o.validationIntervalMs > 0) {
      // Not exclusive: validation waits for syncs to ship the position it checks.
      this.#validationTimer = LongTimer.interval(() => {
        if (this.#stopping) return;
        this.validate().catch((err: unknown) => {
          if (!this.#stopped) this.#logger.error('validation failed', { db: this.db.path, replica: this.name, error: String(err) });
        });
      }, o.validationIntervalMs);
    }
  }

  /**
   * The first interval snapshot after a start is due one interval after the latest snapshot in
   * storage, as Litestream schedules it: restarting more often than the interval must not put
   * interval snapshots off forever.
   */
  #scheduleFirstSnapshot(): void {
    const interval = this.#options.snapshotIntervalMs;
    void this.#latestSnapshotAt().then((latest) => {
      if (this.#stopping) return;
      this.#scheduleSnapshot(latest === undefined ? interval : Math.min(interval, Math.max(0, latest + interval - Date.now())));
    });
  }

  /** When the current generation's latest snapshot in storage was taken; undefined when none is known. */
  async #latestSnapshotAt(): Promise<number | undefined> {
    const gen = this.db.pos?.generation;
    if (!gen) return undefined;
    try {
      let latest: number | undefined;
      for await (const snap of listSnapshots(this.client, gen, { signal: this.#abort.signal })) {
        const t = snap.createdAt.getTime();
        if (latest === undefined || t > latest) latest = t;
      }
      return latest;
    } catch (err) {
      if (!this.#stopping) {
        this.#logger.warn('cannot list snapshots to schedule the next one; waiting a full snapshot interval', {
          db: this.db.path,
          replica: this.name,
          error: String(err),
        });
      }
      return undefined;
    }
  }

  #scheduleSnapshot(delayMs: number): void {
    this.#snapshotTimer = LongTimer.timeout(() => {
      void this.#background('snapshot', async () => {
        if (this.db.pos) await this.#snapshotLocked();
      }).finally(() => {
        if (!this.#stopping) this.#scheduleSnapshot(this.#options.snapshotIntervalMs);
      });
    }, delayMs);
  }

  /**
   * Stops every timer (snapshots, retention, validation, throttled syncs) so nothing new starts;
   * `stop` then makes the final sync. The database calls this first when it closes.
   */
  stopTimers(): void {
    this.#stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    for (const t of [this.#snapshotTimer, this.#retentionTimer, this.#validationTimer]) t?.clear();
    this.#timer = undefined;
  }

  async #background(what: string, fn: () => Promise<unknown>): Promise<void> {
    if (this.#stopping) return;
    try {
      await this.#exclusive(fn);
    } catch (err) {
      if (this.#stopped && isAbortError(err)) return;
      this.#logger.error(`${what} failed`, { db: this.db.path, replica: this.name, error: String(err) });
    }
  }

  /** Runs `fn` after any sync in progress, so snapshots, retention and syncs never overlap. */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.#running) await this.#running.catch(() => undefined);
    let done!: () => void;
    this.#running = new Promise<void>((r) => (done = r));
    try {
      return await fn();
    } finally {
      this.#running = undefined;
      done();
      // Commits announced while this ran (notify only flags them then) are shipped now.
      const dpos = this.db.pos;
      if (this.#again || (dpos && this.#pos && comparePos(this.#pos, dpos) < 0)) {
        this.#again = false;
        queueMicrotask(() => this.notify());
      }
    }
  }

  /**
   * Tells the replica the shadow WAL advanced. It uploads at once if the last upload started more
   * than `syncIntervalMs` ago, otherwise when that interval has passed.
   */
  notify(): void {
    if (!this.#started || this.#stopped || this.#stopping) return;
    this.#updatePending();
    if (this.#timer) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    // The next upload starts early by a high percentile of recent upload durations, so that a
    // commit landing just after an upload started is still durable within one interval.
    const wait =
      this.#failures > 0
        ? 0
        : this.#lastUploadStartedAt + this.#options.syncIntervalMs - this.#lastUploadMs - Date.now();
    if (wait <= 0) this.#kick();
    else {
      // At most setTimeout's longest delay: an absurd sync interval must not overflow into 1 ms.
      this.#timer = setTimeout(
        () => {
          this.#timer = undefined;
          this.#kick();
        },
        Math.min(wait, MAX_DELAY_MS),
      );
      this.#timer.unref();
    }
  }

  #kick(): void {
    if (this.#stopped || this.#stopping) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#again = false;
    const started = Date.now();
    this.#lastUploadStartedAt = started;
    const before = this.#pos;
    void this.#exclusive(async () => {
      const watchdog = this.#watchSlowSync();
      try {
        await this.sync();
      } catch (err) {
        // Scheduled inside the exclusive section: when it ends, the re-notification it queues sees
        // the retry timer and waits for it, instead of starting a second attempt at once.
        this.#retryLater(err);
        throw err;
      } finally {
        watchdog();
      }
    })
      .then(
        () => this.#synced(started, before),
        // The failure was recorded, reported and its retry scheduled by #retryLater.
        () => undefined,
      )
      .catch((err: unknown) => this.#retryLater(err));
  }

  /**
   * Reports a sync that runs past max(slowSyncMs, 3 sync intervals): an SDK waiting out a hung
   * store (several attempts with long timeouts) said nothing for minutes, while the replica looked
   * merely behind. The replica's `lastError` says so until the sync ends, and a warning is logged
   * once. Returns the function that ends the watch.
   */
  #watchSlowSync(): () => void {
    const afterMs = Math.max(this.#options.slowSyncMs, 3 * this.#options.syncIntervalMs);
    const started = performance.now();
    let slow = false;
    const timer = LongTimer.timeout(() => {
      if (this.#stopped) return;
      slow = true;
      const seconds = Math.round(afterMs / 1000);
      if (this.#lastError === undefined) {
        this.#lastError = new ReplicaError(`a sync has been running for more than ${seconds} s: a large upload, or the storage is slow or not answering`);
      }
      this.#logger.warn('replica sync still running; the storage may be slow or not answering', { db: this.db.path, replica: this.name, seconds });
    }, afterMs);
    return () => {
      timer.clear();
      if (slow) {
        this.#logger.info('replica sync ended', { db: this.db.path, replica: this.name, seconds: Math.round((performance.now() - started) / 1000) });
      }
    };
  }

  /** Bookkeeping after a successful sync started at `started` from position `before`. */
  #synced(started: number, before: Pos | undefined): void {
    if (this.#pos !== before) {
      this.#uploadMs.push(Date.now() - started);
      if (this.#uploadMs.length > 16) this.#uploadMs.shift();
      // The longest of the last 16 uploads, plus 6 ms for noticing and copying a commit, sets how
      // early to start: a commit that just missed an upload waits for the next one, which must land
      // within the interval even when it is one of the slower ones (sync-interval 100 ms: lag p99
      // 93.7-95.0 ms in three runs, against 95.7-96.1 with the 90th percentile, which let a 100.6
      // through on a slow day). A stall counts only until 16 quicker uploads replace it, and never
      // starts uploads more than half an interval early.
      let longest = 0;
      for (const ms of this.#uploadMs) longest = Math.max(longest, ms);
      this.#lastUploadMs = Math.min(longest + 6, this.#options.syncIntervalMs / 2);
    }
    if (this.#failures > 0) {
      this.#logger.info('replica recovered', { db: this.db.path, replica: this.name, failedAttempts: this.#failures });
    }
    this.#failures = 0;
    this.#lastError = undefined;
    if (this.#again || (this.db.pos && this.#pos && comparePos(this.#pos, this.db.pos) < 0)) this.notify();
  }

  /** Records a failed sync, reports it ('replica-error', a warning once per episode) and schedules the retry. */
  #retryLater(err: unknown): void {
    // A sync cut short by stop() (its deadline) is reported by stop() itself, not retried.
    if (this.#stopped || this.#abort.signal.aborted) return;
    this.#lastError = err;
    const delay = Math.min(MAX_RETRY_DELAY_MS, backoffDelay(this.#failures, 250));
    // One retry chain only: a timer already pending is replaced, never left to fire a second attempt.
    // Scheduled before anything is reported, so a failing logger cannot cost the retry.
    if (this.#timer) clearTimeout(this.#timer);
    const timer = setTimeout(() => {
      if (this.#timer === timer) this.#timer = undefined;
      this.#kick();
    }, delay);
    timer.unref();
    this.#timer = timer;
    const now = Date.now();
    if (this.#failures === 0) {
      this.#failingSince = now;
      this.#failureLoggedAt = now;
      this.#logger.warn(isRetryable(err) ? 'replica sync failed; retrying' : 'replica sync failed; will keep retrying', {
        db: this.db.path,
        replica: this.name,
        error: String(err),
      });
    } else if (now - this.#failureLoggedAt >= this.#options.failureLogIntervalMs) {
      // Once per interval while it lasts: one line per attempt would flood the log, one per outage
      // would not tell a long one from a blip.
      this.#failureLoggedAt = now;
      this.#logger.warn('replica sync still failing; retrying', {
        db: this.db.path,
        replica: this.name,
        failedAttempts: this.#failures + 1,
        failingSince: new Date(this.#failingSince).toISOString(),
        error: String(err),
      });
    }
    this.#failures++;
    this.#verified = false;
    // Storage that refuses the data will not take it by itself: whoever awaits durability (flush)
    // hears it now, rather than waiting until someone fixes the storage. Retries go on meanwhile.
    if (refusesData(err)) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const w of waiters) w.reject(err);
      this.#releaseKeepAlive();
    }
    this.db.events.emit('replica-error', { db: this.db.path, replica: this.name, error: err, retryInMs: delay });
  }

  /**
   * Uploads everything the shadow WAL holds beyond this replica's position, one segment per WAL
   * index range, taking a snapshot first when the generation has none here.
   */
  async sync(): Promise<void> {
    const signal = this.#abort.signal;
    // The position to reach is the database's now: commits arriving while this uploads wait for the
    // next sync, which the sync interval schedules (chasing them here shipped one tiny segment after
    // another right after each throttled upload).
    let target = this.db.pos;
    for (;;) {
      let dpos = target;
      if (!dpos) {
        // Nothing to replicate yet (the database does not exist), so nothing is pending.
        this.#pendingSince = undefined;
        this.#marks = [];
        return;
      }
      // The database left this replica's generation (its file was replaced or removed, or another
      // process restarted the WAL): first ship what the shadow WAL still holds of the old one, so
      // commits made just before the change stay restorable there.
      const leftEnd = await this.#leftGenerationEnd(dpos);
      if (leftEnd) dpos = leftEnd;
      if (!this.#pos || !this.#verified || this.#pos.generation !== dpos.generation || this.#needSnapshot) {
        await this.#resolvePos(dpos);
      }
      const pos = this.#pos!;
      if (pos.generation !== dpos.generation) {
        // The database moved to another generation meanwhile: aim at where it is now.
        target = this.db.pos;
        continue;
      }
      if (comparePos(pos, dpos) >= 0) {
        // The generation left behind is shipped: on to the database's current one.
        if (leftEnd) continue;
        // Someone waits for more (Db.flush): reach where the database is now, not an interval later.
        const now = this.db.pos;
        if (now && now.generation === pos.generation && comparePos(now, pos) > 0 && this.#waiters.some((w) => !this.#reached(w.pos))) {
          target = now;
          continue;
        }
        break;
      }
      let end: number;
      if (pos.index < dpos.index) {
        const size = await this.db.shadowSize(pos.generation, pos.index);
        if (size === undefined) {
          this.#logger.warn('the shadow WAL this replica needs was dropped; taking a new snapshot', {
            db: this.db.path,
            replica: this.name,
            position: pos.toString(),
          });
          this.#needSnapshot = true;
          continue;
        }
        end = size;
        if (pos.offset >= end) {
          this.#setPos(new Pos(pos.generation, pos.index + 1, 0));
          continue;
        }
      } else {
        end = dpos.offset;
      }
      const started = performance.now();
      const path = this.db.shadowWalPath(pos.generation, pos.index);
      // A segment of a bulk load is compressed by the LZ4 worker pool as soon as its size says so.
      await writeWalSegment(this.client, pos, readRange(path, pos.offset, end), { signal, lz4: { expectedBytes: end - pos.offset } });
      const next = new Pos(pos.generation, pos.index, end);
      // Storage took a write: the error of an earlier attempt is history before any waiter wakes.
      this.#lastError = undefined;
      this.#setPos(next);
      this.db.events.emit('replica-sync', {
        db: this.db.path,
        replica: this.name,
        pos: next,
        bytes: end - pos.offset,
        durationMs: performance.now() - started,
      });
      this.#logger.info('replica synced', { db: this.db.path, replica: this.name, position: next.toString() });
    }
    this.#lastSyncAt = new Date();
    this.#updatePending();
    await this.db.cleanShadow();
  }

  #setPos(pos: Pos): void {
    this.#pos = pos;
    this.#verified = true;
    // Here rather than only at the end of sync(), so that whoever `waitFor` wakes (Db.flush)
    // already sees the replica caught up.
    this.#updatePending();
    const still: Waiter[] = [];
    for (const w of this.#waiters) {
      if (this.#reached(w.pos)) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
    this.#releaseKeepAlive();
  }

  #reached(target: Pos): boolean {
    const p = this.#pos;
    if (!p) return false;
    if (p.generation === target.generation) return comparePos(p, target) >= 0;
    // The database moved to a newer generation and this replica follows it.
    return this.db.pos?.generation === p.generation && target.generation !== p.generation;
  }

  /**
   * Resolves once this replica holds `pos` (or a later generation of the database). While anyone
   * waits, the process stays alive even though the engine's own timers do not hold it open.
   */
  waitFor(pos: Pos, signal?: AbortSignal): Promise<void> {
    if (this.#reached(pos)) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#stopped) return Promise.reject(new ReplicaError(`replica ${this.name} of ${this.db.path} is stopped`));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        this.#releaseKeepAlive();
        reject(signal!.reason);
      };
      const w: Waiter = {
        pos,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      this.#waiters.push(w);
      this.#keepAlive ??= setInterval(() => undefined, 1 << 30);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #releaseKeepAlive(): void {
    if (this.#waiters.length === 0 && this.#keepAlive) {
      clearInterval(this.#keepAlive);
      this.#keepAlive = undefined;
    }
  }

  /** Uploads now, without waiting for the sync interval (used by `Db.flush`). */
  syncNow(): void {
    if (!this.#started || this.#stopped) return;
    if (this.#timer && this.#failures === 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (!this.#timer) this.#kick();
  }

  /** The generation whose rest was last announced as being shipped (logged once per generation). */
  #leftLogged: string | undefined;

  /**
   * When the database has moved on from the generation this replica is in and the shadow WAL still
   * holds more of that generation than storage does, returns the end of it (else undefined). After
   * a failed attempt the position is first checked against storage again.
   */
  async #leftGenerationEnd(dpos: Pos): Promise<Pos | undefined> {
    const pos = this.#pos;
    if (!pos || pos.generation === dpos.generation || this.#needSnapshot) return undefined;
    const end = await this.db.shadowEnd(pos.generation);
    if (!end || comparePos(pos, end) >= 0) return undefined;
    if (!this.#verified) {
      const stored = await this.#storedPos(pos.generation);
      if (!stored || stored.damaged) return undefined;
      const local = await this.db.shadowSize(stored.pos.generation, stored.pos.index);
      // Storage must end where the shadow WAL can continue from; otherwise the old generation is
      // left as storage has it.
      if (local === undefined || stored.pos.offset > local || comparePos(stored.pos, end) >= 0) return undefined;
      this.#setPos(stored.pos);
    }
    if (this.#leftLogged !== pos.generation) {
      this.#leftLogged = pos.generation;
      this.#logger.info('shipping the rest of the generation the database left', {
        db: this.db.path,
        replica: this.name,
        position: this.#pos!.toString(),
        end: end.toString(),
      });
    }
    return end;
  }

  /**
   * Where storage's chain of `generation` ends: the end of its last WAL segment after its latest
   * snapshot (that snapshot's index when none follows). `damaged` is that segment when it does not
   * decode: nothing can follow it. Undefined when storage has no snapshot of the generation.
   */
  async #storedPos(generation: string): Promise<{ pos: Pos; damaged?: { segment: WalSegmentInfo; error: unknown } } | undefined> {
    const signal = this.#abort.signal;
    const last = (await collect(listSnapshots(this.client, generation, { signal }))).at(-1);
    if (!last) return undefined;
    const pos = new Pos(generation, last.index, 0);
    const segs = await collect(listWalSegments(this.client, generation, { signal }));
    const segment = segs.filter((s) => s.index >= last.index).at(-1);
    if (!segment) return { pos };
    try {
      return { pos: new Pos(generation, segment.index, segment.offset + (await this.#segmentLength(segment))) };
    } catch (error) {
      if (!CorruptDataError.isInstance(error)) throw error;
      return { pos, damaged: { segment, error } };
    }
  }

  /**
   * Finds the position storage really holds for the database's generation: the end of its last
   * segment after its latest snapshot. Takes a snapshot when storage has none for the generation,
   * or when it cannot continue from what the shadow WAL still has.
   */
  async #resolvePos(dpos: Pos): Promise<void> {
    const signal = this.#abort.signal;
    const gen = dpos.generation;
    if (!this.#needSnapshot) {
      const stored = await this.#storedPos(gen);
      if (stored) {
        const { pos, damaged } = stored;
        const readable = damaged === undefined;
        if (damaged) {
          // Nothing can follow a segment that does not decode (truncated, damaged, or not one):
          // a new snapshot starts a chain that restores past it.
          this.#logger.warn('the last WAL segment in storage is damaged; taking a new snapshot', {
            db: this.db.path,
            replica: this.name,
            object: walSegmentKey(gen, damaged.segment.index, damaged.segment.offset),
            error: String(damaged.error),
          });
        }
        const local = await this.db.shadowSize(gen, pos.index);
        const continuable =
          readable && comparePos(pos, dpos) <= 0 && local !== undefined && (pos.offset === 0 || pos.offset <= local);
        if (continuable) {
          if (!this.#pos || comparePos(this.#pos, pos) !== 0) {
            this.#logger.info('replica position from storage', { db: this.db.path, replica: this.name, position: pos.toString() });
          }
          this.#setPos(pos);
          return;
        }
        if (readable) this.#logger.warn('replica cannot continue from what storage holds; taking a new snapshot', {
          db: this.db.path,
          replica: this.name,
          storage: pos.toString(),
          local: dpos.toString(),
        });
      }
    }
    const info = await this.#snapshotLocked();
    // Uploads go on from the start of the snapshot's index. When its checkpoint could not start a
    // new index (an app's reader held the WAL), segments of that index may be in storage already,
    // up to a damaged one or from a chain that could not go on: left there, they would overlap the
    // new ones and break restores of the latest state. Their bytes are shipped again from the
    // shadow WAL, which holds the whole index.
    const stale: Pos[] = [];
    for await (const seg of listWalSegments(this.client, info.generation, { signal })) {
      if (seg.index === info.index) stale.push(new Pos(seg.generation, seg.index, seg.offset));
    }
    if (stale.length > 0) await deleteWalSegments(this.client, stale, { signal });
    this.#lastError = undefined;
    this.#setPos(new Pos(info.generation, info.index, 0));
  }

  async #segmentLength(seg: WalSegmentInfo): Promise<number> {
    const stream = await openWalSegment(this.client, new Pos(seg.generation, seg.index, seg.offset), {
      signal: this.#abort.signal,
    });
    let n = 0;
    for await (const chunk of stream) n += (chunk as Buffer).length;
    return n;
  }

  /** Takes a snapshot of the database now (waiting for any sync in progress). */
  snapshot(): Promise<SnapshotInfo> {
    return this.#exclusive(() => this.#snapshotLocked());
  }

  async #snapshotLocked(): Promise<SnapshotInfo> {
    const signal = this.#abort.signal;
    const started = performance.now();
    return this.db.withSnapshotLock(async (pos, file) => {
      // Chunks of one LZ4 block each are compressed without a copy, read into two buffers that are
      // refilled (the encoder keeps nothing from a chunk): no fresh memory for each of a large
      // database's blocks. Read through the Db's descriptor, which stays open (see database-file.ts).
      const expectedBytes = (await file.stat()).size;
      const stream = readFileChunks(file, { chunkBytes: LZ4_DEFAULT_BLOCK_SIZE, end: expectedBytes });
      const info = await writeSnapshot(this.client, pos.generation, pos.index, stream, { signal, lz4: { expectedBytes } });
      this.#needSnapshot = false;
      this.db.events.emit('snapshot', {
        db: this.db.path,
        replica: this.name,
        generation: pos.generation,
        index: pos.index,
        bytes: info.size,
        durationMs: performance.now() - started,
      });
      this.#logger.info('snapshot written', { db: this.db.path, replica: this.name, position: pos.toString(), size: info.size });
      return info;
    });
  }

  /**
   * Deletes what retention no longer needs: whole generations with no snapshot newer than the
   * retention period, and in the others every snapshot and segment older than the oldest retained
   * snapshot. Never deletes the current generation's latest snapshot or anything after it, and
   * takes a snapshot first when none is recent enough.
   */
  async enforceRetention(): Promise<void> {
    const signal = this.#abort.signal;
    const cutoff = Date.now() - this.#options.retentionMs;
    const current = this.db.pos?.generation;
    // Without a current generation (the database is missing or not open yet), retention would see
    // every backup as old: do nothing until replication runs.
    if (current === undefined) return;
    const gens = await listGenerations(this.client, { signal });
    const all = new Map<string, SnapshotInfo[]>();
    for (const g of gens) all.set(g, await collect(listSnapshots(this.client, g, { signal })));
    const anyRetained = [...all.values()].some((snaps) => snaps.some((s) => s.createdAt.getTime() >= cutoff));
    if (!anyRetained && current) {
      const info = await this.#snapshotLocked();
      const list = all.get(current) ?? [];
      list.push(info);
      all.set(current, list);
    }
    // The generation holding the newest snapshot is never deleted, whatever the current one is.
    let newest: { g: string; t: number } | undefined;
    for (const [g, snaps] of all) {
      for (const sn of snaps) if (!newest || sn.createdAt.getTime() > newest.t) newest = { g, t: sn.createdAt.getTime() };
    }
    for (const [g, snaps] of all) {
      const retained = snaps.filter((s) => s.createdAt.getTime() >= cutoff);
      if ((g === current || g === newest?.g) && retained.length === 0 && snaps.length > 0) retained.push(snaps.at(-1)!);
      if (retained.length === 0) {
        if (g === current) continue;
        await deleteGeneration(this.client, g, { signal });
        this.#logger.info('generation deleted by retention', { db: this.db.path, replica: this.name, generation: g });
        continue;
      }
      const minIndex = Math.min(...retained.map((s) => s.index));
      // Snapshots go first: a snapshot left behind by an interrupted run still has all its segments.
      for (const s of snaps) if (s.index < minIndex) await deleteSnapshot(this.client, g, s.index, { signal });
      const old: Pos[] = [];
      for await (const seg of listWalSegments(this.client, g, { signal })) {
        if (seg.index >= minIndex) break;
        old.push(new Pos(g, seg.index, seg.offset));
      }
      if (old.length > 0) {
        await deleteWalSegments(this.client, old, { signal });
        this.#logger.info('segments deleted by retention', { db: this.db.path, replica: this.name, generation: g, count: old.length, beforeIndex: minIndex });
      }
    }
  }

  /** Restores this replica into a temp file and compares it with the database; emits 'validation'. */
  async validate(): Promise<boolean> {
    try {
      const ok = await validateReplica(this, this.#abort.signal);
      this.db.events.emit('validation', { db: this.db.path, replica: this.name, ok });
      if (!ok) this.#logger.error('validation failed: the replica does not match the database', { db: this.db.path, replica: this.name });
      return ok;
    } catch (err) {
      this.db.events.emit('validation', { db: this.db.path, replica: this.name, ok: false, error: err });
      throw err;
    }
  }

  /** Stops the timers; with `finalSync`, first uploads everything the shadow WAL holds. */
  async stop(options: { finalSync?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    this.stopTimers();
    let error: unknown;
    const failing = this.#lastError;
    if (options.finalSync && this.#started && !this.#stopped) {
      const onAbort = () => this.#abort.abort(options.signal!.reason);
      // A deadline that passed while the database made its own final copy applies at once.
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        // A replica that keeps failing gets a few tries with backoff, then the error is reported.
        for (let attempt = 0; ; attempt++) {
          try {
            // Bounded by the caller's deadline even when a client does not honour its signal.
            await raceAbort(this.#exclusive(() => this.sync()), options.signal);
            break;
          } catch (err) {
            if (attempt >= 4 || isAbortError(err) || !isRetryable(err)) {
              error = err;
              break;
            }
            await sleep(backoffDelay(attempt, 250), this.#abort.signal);
          }
        }
      } finally {
        options.signal?.removeEventListener('abort', onAbort);
      }
    }
    this.#stopped = true;
    this.#abort.abort(new ReplicaError(`replica ${this.name} of ${this.db.path} stopped`));
    for (const w of this.#waiters) w.reject(new ReplicaError(`replica ${this.name} of ${this.db.path} stopped before reaching ${w.pos}`));
    this.#waiters = [];
    this.#releaseKeepAlive();
    while (this.#running && !options.signal?.aborted) await raceAbort(this.#running, options.signal).catch(() => undefined);
    if (error !== undefined && failing !== undefined && LstreamError.isInstance(error) && error.code === 'EDB') {
      // The final sync could not be made for the database's side (it needs a snapshot, and the
      // database is closed) because of what this replica had been failing with: name that.
      throw new ReplicaError(
        `replica ${this.name} of ${this.db.path} was still failing when it stopped: ${String(failing)} (its final sync: ${(error as Error).message})`,
        { cause: failing },
      );
    }
    if (error !== undefined) throw error;
  }
}

/**
 * True for a storage error that retrying cannot fix without someone's help: access denied, a
 * read-only or full file system, a quota.
 */
function refusesData(err: unknown): boolean {
  if (AccessDeniedError.isInstance(err)) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOSPC' || code === 'EDQUOT';
}

/** An AbortController whose signal does not warn past 10 listeners (a replica has many calls in flight). */
function replicaAbortController(): AbortController {
  const ac = new AbortController();
  setMaxListeners(0, ac.signal);
  return ac;
}
