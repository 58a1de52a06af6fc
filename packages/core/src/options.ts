import type { Logger } from './logger.js';
import { InvalidArgumentError } from './errors.js';

/** How often the database is checked for changes when no file event arrives (Litestream's default). */
export const MONITOR_INTERVAL_MS = 1_000;
/** A PASSIVE checkpoint runs when none ran for this long and the WAL holds more than one frame. */
export const CHECKPOINT_INTERVAL_MS = 60_000;
/** WAL pages that trigger a PASSIVE checkpoint. */
export const MIN_CHECKPOINT_PAGE_COUNT = 1_000;
/** WAL pages that trigger a RESTART checkpoint. */
export const MAX_CHECKPOINT_PAGE_COUNT = 10_000;
/** WAL pages that trigger a TRUNCATE checkpoint (the runaway-WAL failsafe). */
export const TRUNCATE_PAGE_COUNT = 500_000;
/** How long lstream's SQLite connection waits for a lock. */
export const BUSY_TIMEOUT_MS = 1_000;
/**
 * Shadow WAL bytes kept for a replica that cannot ship them. Past this, the oldest files are removed,
 * a warning is logged and that replica takes a new snapshot when it recovers.
 */
export const MAX_SHADOW_WAL_BYTES = 1024 * 1024 * 1024;

/** A commit is shipped at once if the last upload is older than this, else when it has passed. */
export const SYNC_INTERVAL_MS = 1_000;
/** Snapshots and segments older than this are removed (never the newest restorable chain). */
export const RETENTION_MS = 24 * 60 * 60 * 1_000;
/** How often retention runs. */
export const RETENTION_CHECK_INTERVAL_MS = 60 * 60 * 1_000;

/** Settings of one replicated database. Every field is optional; the defaults are Litestream's. */
export interface DbOptions {
  /** Directory of the shadow WAL and generation files (default `<dir>/.<name>-litestream`). */
  metaPath?: string;
  monitorIntervalMs?: number;
  checkpointIntervalMs?: number;
  minCheckpointPageCount?: number;
  maxCheckpointPageCount?: number;
  truncatePageCount?: number;
  busyTimeoutMs?: number;
  maxShadowWalBytes?: number;
  logger?: Logger;
}

/** Settings of one replica of a database. Every field is optional; the defaults are Litestream's. */
export interface ReplicaOptions {
  /** Unique per database; default the client's `type`. */
  name?: string;
  /** Throttle between uploads; 0 ships every commit. */
  syncIntervalMs?: number;
  /** Interval between snapshots; 0 means only at the start of a generation and when retention needs one. */
  snapshotIntervalMs?: number;
  retentionMs?: number;
  retentionCheckIntervalMs?: number;
  /** Interval between validations (restore into a temp file and compare); 0 disables it. */
  validationIntervalMs?: number;
  /**
   * A sync running longer than this (default 15 s, at least three sync intervals) is reported: a
   * warning, and `lastError` in the replica's status until it ends.
   */
  slowSyncMs?: number;
  /**
   * While syncs keep failing, a warning is logged at the first failure and then again every this
   * many milliseconds (default 60 s), with the attempts so far and the latest error, so a log shows
   * an outage that lasts apart from one that passed.
   */
  failureLogIntervalMs?: number;
}

/**
 * Throws InvalidArgumentError unless every named option is a finite number of at least 0 (above 0
 * for those in `positive`): a NaN or negative interval made a timer fire without pause.
 */
export function checkNumericOptions(options: Record<string, number>, positive: readonly string[] = []): void {
  for (const [name, value] of Object.entries(options)) {
    const above = positive.includes(name);
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (above && value === 0)) {
      throw new InvalidArgumentError(`${name} must be a finite number ${above ? 'above' : 'of at least'} 0, got ${String(value)}`);
    }
  }
}
