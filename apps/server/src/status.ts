import { basename } from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { redactText, type DbConfig, type RunningDatabases } from '@ls/config';
import {
  collect,
  listGenerations,
  listSnapshots,
  SYNC_INTERVAL_MS,
  type Db,
  type LstreamEmitter,
  type Replica,
  type SnapshotInfo,
} from '@ls/core';
import { RingBuffer } from './ring-buffer.js';

/** A replica is in sync while its lag stays under this many sync intervals (and under READY_MIN_LAG_LIMIT_MS). */
export const LAG_LIMIT_INTERVALS = 3;
/** Smallest lag limit, so a replica with `sync-interval: 0` is not "lagging" during one slow upload. */
export const MIN_LAG_LIMIT_MS = 5_000;
/** How often the lag of every replica is sampled for the dashboard's chart. */
export const LAG_SAMPLE_INTERVAL_MS = 1_000;
/** Lag samples kept per replica: ten minutes at one a second. */
export const LAG_SAMPLES = 600;
/** Replica and database errors kept for the dashboard. */
export const RECENT_ERRORS = 50;
/** Listings of generations and snapshots are reused for this long, so dashboard refreshes do not hammer storage. */
export const LISTING_CACHE_MS = 15_000;
/** A storage listing still running after this long is reported as failed (listError), so the API never hangs on storage. */
export const LISTING_TIMEOUT_MS = 10_000;
/** Length of the window whose event-loop delay `process()` reports next to the figures since start. */
export const EVENT_LOOP_WINDOW_MS = 10_000;
/** Snapshots reported per replica (the newest), so a long retention does not make the API response huge. */
export const MAX_SNAPSHOTS_LISTED = 200;

/** State of a replica as the dashboard shows it. */
export type ReplicaState = 'in-sync' | 'lagging' | 'failing' | 'starting' | 'waiting';

/** A recent replica or database error, credentials redacted. */
export interface RecentError {
  at: string;
  db: string;
  replica?: string;
  kind: 'replica-error' | 'db-sync-error';
  message: string;
}

/** What storage holds for one replica, listed at `listedAt` (0: never listed yet). */
interface Listing {
  listedAt: number;
  generations: { id: string; snapshotCount: number; snapshots: SnapshotInfo[] }[];
  snapshotCount: number;
  /** Why the last attempt failed; the generations are then those of the last listing that worked. */
  error?: string;
}

/** The listing cache of one replica: the last result, when it was attempted, and the listing in flight. */
interface ListingEntry {
  value?: Listing;
  attemptedAt: number;
  /** The storage listing itself: while set, no other listing of this replica starts. */
  inflight?: Promise<void>;
  /** Settles when `inflight` does or LISTING_TIMEOUT_MS after it started, whichever is first. */
  settled?: Promise<void>;
}

interface Tracked {
  name: string;
  config: DbConfig;
  db?: Db;
  failingSince?: number;
  lastDbError?: string;
}

/** Message of an error, with credentials removed. */
function messageOf(err: unknown, secrets: readonly string[]): string {
  const msg = err instanceof Error ? err.message : String(err);
  return redactText(msg, secrets);
}

/** Sampling period of the event-loop delay monitor. */
const EVENT_LOOP_RESOLUTION_MS = 10;

/**
 * Percentiles of an event-loop delay histogram, in milliseconds beyond the sampling period (the
 * monitor records the whole timer interval, so an idle loop reads as the resolution, here 0).
 */
function summarize(h: IntervalHistogram): { p50: number; p99: number; max: number; samples: number } {
  const ms = (ns: number) => Math.max(0, Math.round((ns / 1e6 - EVENT_LOOP_RESOLUTION_MS) * 100) / 100);
  return { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), samples: h.count };
}

/** The name a database is addressed by in the API: its `name` key, else its file name. */
export function dbName(config: DbConfig): string {
  return config.name ?? basename(config.path);
}

/**
 * Everything the HTTP server reports about the databases it replicates: live status from the
 * engine, a ring buffer of lag samples per replica, recent errors from the engine's events, cached
 * storage listings, and readiness.
 */
export class ServerStatus {
  readonly startedAt = Date.now();
  readonly #dbs: Tracked[];
  readonly #secrets: string[];
  readonly #lag = new Map<string, RingBuffer<[number, number]>>();
  readonly #errors = new RingBuffer<RecentError>(RECENT_ERRORS);
  readonly #listings = new Map<Replica, ListingEntry>();
  readonly #eventLoop: IntervalHistogram;
  readonly #eventLoopWindow: IntervalHistogram;
  #lastWindow: { p50: number; p99: number; max: number; samples: number } | undefined;
  readonly #windowTimer: NodeJS.Timeout;
  readonly #unsubscribe: (() => void)[] = [];
  #sampler: NodeJS.Timeout | undefined;
  #running: RunningDatabases | undefined;
  #stopping = false;
  /** Bytes of WAL the databases committed, and replicas uploaded, since start. */
  readonly totals = { walBytes: 0, replicaBytes: 0, snapshots: 0 };

  constructor(configs: readonly DbConfig[], events: LstreamEmitter, secrets: readonly string[]) {
    this.#dbs = configs.map((config) => ({ name: dbName(config), config }));
    this.#secrets = [...secrets];
    this.#eventLoop = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    this.#eventLoop.enable();
    this.#eventLoopWindow = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
    this.#eventLoopWindow.enable();
    this.#windowTimer = setInterval(() => {
      this.#lastWindow = summarize(this.#eventLoopWindow);
      this.#eventLoopWindow.reset();
    }, EVENT_LOOP_WINDOW_MS);
    this.#windowTimer.unref();
    const byPath = (path: string) => this.#dbs.find((d) => d.config.path === path);
    this.#unsubscribe.push(
      events.on('replica-error', (e) => {
        this.#errors.push({ at: new Date().toISOString(), db: e.db, replica: e.replica, kind: 'replica-error', message: messageOf(e.error, this.#secrets) });
      }),
      events.on('db-sync-error', (e) => {
        const message = messageOf(e.error, this.#secrets);
        this.#errors.push({ at: new Date().toISOString(), db: e.db, kind: 'db-sync-error', message });
        const d = byPath(e.db);
        if (d) {
          d.failingSince ??= Date.now();
          d.lastDbError = message;
        }
      }),
      events.on('db-sync', (e) => {
        this.totals.walBytes += e.bytes;
        const d = byPath(e.db);
        if (d) {
          d.failingSince = undefined;
          d.lastDbError = undefined;
        }
      }),
      events.on('replica-sync', (e) => (this.totals.replicaBytes += e.bytes)),
      events.on('snapshot', () => this.totals.snapshots++),
    );
  }

  /** Records the opened databases (same order as the configs) and starts sampling lag. */
  attach(running: RunningDatabases): void {
    this.#running = running;
    running.dbs.forEach((db, i) => (this.#dbs[i]!.db = db));
    this.#sampler = setInterval(() => this.#sample(), LAG_SAMPLE_INTERVAL_MS);
    this.#sampler.unref();
    this.#sample();
  }

  /** The opened databases (none until `attach`). */
  get dbs(): Db[] {
    return this.#running?.dbs ?? [];
  }

  /** Marks the server as shutting down (readiness fails from now on) and stops sampling. */
  stop(): void {
    this.#stopping = true;
    if (this.#sampler) clearInterval(this.#sampler);
    for (const off of this.#unsubscribe.splice(0)) off();
  }

  /** Releases the event-loop monitor. */
  dispose(): void {
    this.stop();
    clearInterval(this.#windowTimer);
    this.#eventLoop.disable();
    this.#eventLoopWindow.disable();
  }

  #sample(): void {
    const now = Date.now();
    for (const d of this.#dbs) {
      for (const r of d.db?.replicas ?? []) {
        // Keyed by path: two databases may share a display name (/a/app.db and /b/app.db).
        const key = `${d.config.path}\u0000${r.name}`;
        let ring = this.#lag.get(key);
        if (!ring) this.#lag.set(key, (ring = new RingBuffer(LAG_SAMPLES)));
        ring.push([now, this.#lagMs(r)]);
      }
    }
  }

  #lagMs(r: Replica): number {
    return r.status().lagMs;
  }

  #lagLimitMs(d: Tracked, r: Replica): number {
    const rc = d.config.replicas.find((c) => c.name === r.name);
    const interval = rc?.options.syncIntervalMs ?? SYNC_INTERVAL_MS;
    return Math.max(LAG_LIMIT_INTERVALS * interval, MIN_LAG_LIMIT_MS);
  }

  #state(d: Tracked, r: Replica, lagMs: number): ReplicaState {
    // No database file (yet): nothing to replicate, and nothing replicated either.
    if (d.db?.waitingForDatabase) return 'waiting';
    if (r.status().lastError !== undefined) return 'failing';
    if (lagMs > this.#lagLimitMs(d, r)) return 'lagging';
    if (r.pos === undefined && d.db?.pos !== undefined) return 'starting';
    return 'in-sync';
  }

  /** Finds databases by API name: none, one, or several when the name is ambiguous. */
  find(name: string): { name: string; path: string; db?: Db }[] {
    return this.#dbs.filter((d) => d.name === name).map((d) => ({ name: d.name, path: d.config.path, db: d.db }));
  }

  /** Marks the cached listing of `replica` as out of date, so the next report lists storage again. */
  invalidate(replica: Replica): void {
    const entry = this.#listings.get(replica);
    if (entry) entry.attemptedAt = 0;
  }

  /**
   * Returns what storage holds for `r`: the cached listing while it is younger than LISTING_CACHE_MS;
   * after that the stale one at once while a refresh runs in the background (at most one listing per
   * replica is in flight). Only the very first listing is waited for, and never longer than
   * LISTING_TIMEOUT_MS; a failed or timed-out listing keeps the last generations and sets `error`.
   */
  async #listing(r: Replica): Promise<Listing> {
    let entry = this.#listings.get(r);
    if (!entry) this.#listings.set(r, (entry = { attemptedAt: 0 }));
    if (entry.value && Date.now() - entry.attemptedAt < LISTING_CACHE_MS) return entry.value;
    const settled = this.#refresh(r, entry);
    if (entry.value) return entry.value;
    await settled;
    return entry.value ?? { listedAt: 0, generations: [], snapshotCount: 0, error: 'storage has not been listed yet' };
  }

  #refresh(r: Replica, entry: ListingEntry): Promise<void> {
    if (entry.inflight) return entry.settled!;
    entry.attemptedAt = Date.now();
    const signal = AbortSignal.timeout(LISTING_TIMEOUT_MS);
    const fail = (error: string) => {
      const last = entry.value;
      entry.value = { listedAt: last?.listedAt ?? 0, generations: last?.generations ?? [], snapshotCount: last?.snapshotCount ?? 0, error };
    };
    const timeoutMessage = `listing storage did not finish within ${LISTING_TIMEOUT_MS / 1000} s`;
    let settled = false;
    let timedOut = false;
    const inflight = (async () => {
      const gens = await listGenerations(r.client, { signal });
      const generations = await Promise.all(
        gens.map(async (id) => {
          const snapshots = await collect(listSnapshots(r.client, id, { signal }));
          return { id, snapshotCount: snapshots.length, snapshots };
        }),
      );
      return { listedAt: Date.now(), generations, snapshotCount: generations.reduce((n, g) => n + g.snapshotCount, 0) };
    })().then(
      (listing) => {
        // A listing that finishes after its deadline is still the freshest view of storage.
        entry.value = listing;
      },
      (err: unknown) => {
        // Reported in the response (listError), not swallowed; a timeout was already reported.
        if (!timedOut) fail(messageOf(err, this.#secrets));
      },
    ).finally(() => {
      settled = true;
      entry.inflight = undefined;
    });
    // The client may not honour the signal; the API answers at the deadline whatever it does.
    const deadline = new Promise<void>((resolve) => {
      signal.addEventListener(
        'abort',
        () => {
          if (!settled) {
            timedOut = true;
            fail(timeoutMessage);
          }
          resolve();
        },
        { once: true },
      );
    });
    entry.inflight = inflight;
    entry.settled = Promise.race([inflight, deadline]);
    return entry.settled;
  }

  /** Reports every database and replica: position, lag, last sync and error, generations and snapshots. */
  async databases(): Promise<unknown[]> {
    return Promise.all(
      this.#dbs.map(async (d) => {
        const db = d.db;
        const replicas = await Promise.all(
          (db?.replicas ?? []).map(async (r) => {
            const s = r.status();
            const lagMs = this.#lagMs(r);
            const listing = await this.#listing(r);
            let shown = 0;
            const generations = listing.generations.map((g) => {
              const snapshots = g.snapshots.slice(-Math.max(0, MAX_SNAPSHOTS_LISTED - shown));
              shown += snapshots.length;
              return {
                id: g.id,
                snapshotCount: g.snapshotCount,
                snapshots: snapshots.map((x) => ({ index: x.index, size: x.size, createdAt: x.createdAt.toISOString() })),
              };
            });
            return {
              name: r.name,
              type: s.type,
              state: this.#state(d, r, lagMs),
              position: s.pos?.toString() ?? null,
              lagMs,
              lagLimitMs: this.#lagLimitMs(d, r),
              lastSyncAt: s.lastSyncAt?.toISOString() ?? null,
              pendingSince: s.pendingSince?.toISOString() ?? null,
              lastError: s.lastError === undefined ? null : messageOf(s.lastError, this.#secrets),
              generationCount: listing.generations.length,
              snapshotCount: listing.snapshotCount,
              generations,
              listedAt: listing.listedAt === 0 ? null : new Date(listing.listedAt).toISOString(),
              listError: listing.error ?? null,
            };
          }),
        );
        return {
          name: d.name,
          path: d.config.path,
          open: db !== undefined,
          position: db?.pos?.toString() ?? null,
          lastError: db?.lastError === undefined ? null : messageOf(db.lastError, this.#secrets),
          failingSince: d.failingSince === undefined ? null : new Date(d.failingSince).toISOString(),
          replicas,
        };
      }),
    );
  }

  /** Returns the lag samples of every replica, `[epoch ms, lag ms]` oldest first. */
  lag(): { intervalMs: number; series: { db: string; path: string; replica: string; lagLimitMs: number; samples: [number, number][] }[] } {
    const series = [];
    for (const d of this.#dbs) {
      for (const r of d.db?.replicas ?? []) {
        const samples = this.#lag.get(`${d.config.path}\u0000${r.name}`)?.toArray() ?? [];
        series.push({ db: d.name, path: d.config.path, replica: r.name, lagLimitMs: this.#lagLimitMs(d, r), samples });
      }
    }
    return { intervalMs: LAG_SAMPLE_INTERVAL_MS, series };
  }

  /** Returns the recent replica and database sync errors, oldest first. */
  errors(): RecentError[] {
    return this.#errors.toArray();
  }

  /** Reports the server process itself: uptime, event-loop delay, CPU, memory, bytes replicated. */
  process(): unknown {
    const cpu = process.cpuUsage();
    return {
      pid: process.pid,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeMs: Date.now() - this.startedAt,
      ready: this.readiness().ready,
      eventLoopDelayMs: summarize(this.#eventLoop),
      // The last complete EVENT_LOOP_WINDOW_MS window (null during the first one): steady state, without start-up.
      eventLoopDelayLastWindowMs: this.#lastWindow ?? null,
      cpuMs: { user: cpu.user / 1000, system: cpu.system / 1000 },
      rssBytes: process.memoryUsage.rss(),
      totals: { ...this.totals },
    };
  }

  /**
   * Ready when every database is open, none has failed to sync for longer than MIN_LAG_LIMIT_MS, and
   * every replica's lag is within max(LAG_LIMIT_INTERVALS × its sync interval, MIN_LAG_LIMIT_MS).
   * `reasons` says what is wrong, one line each.
   */
  readiness(): { ready: boolean; reasons: string[] } {
    const now = Date.now();
    const reasons: string[] = [];
    if (this.#stopping) reasons.push('shutting down');
    for (const d of this.#dbs) {
      if (!d.db) {
        reasons.push(`database ${d.name} (${d.config.path}) is not open yet`);
        continue;
      }
      if (d.failingSince !== undefined && now - d.failingSince > MIN_LAG_LIMIT_MS) {
        reasons.push(`database ${d.name}: sync failing for ${Math.round((now - d.failingSince) / 1000)} s: ${d.lastDbError ?? 'unknown error'}`);
      }
      for (const r of d.db.replicas) {
        const lag = this.#lagMs(r);
        const limit = this.#lagLimitMs(d, r);
        if (lag > limit) {
          const err = r.status().lastError;
          const why = err === undefined ? '' : `; last error: ${messageOf(err, this.#secrets)}`;
          reasons.push(`database ${d.name} replica ${r.name}: ${(lag / 1000).toFixed(1)} s behind (limit ${limit / 1000} s)${why}`);
        } else if (r.pos === undefined && d.db.pos !== undefined && now - this.startedAt > limit) {
          reasons.push(`database ${d.name} replica ${r.name}: has not synced yet`);
        }
      }
    }
    return { ready: reasons.length === 0, reasons };
  }
}
