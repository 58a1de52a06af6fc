import { EventEmitter } from 'node:events';
import type { Pos } from './pos.js';
import type { CheckpointMode } from './sqlite-connection.js';

/** A storage call, named as Litestream's `litestream_replica_operation_total` names it. */
export type StorageOp = 'GET' | 'PUT' | 'DELETE' | 'LIST';

/**
 * What kind of failure a storage call ended with, from the contract's typed errors (see
 * `storageErrorKind`): missing key, permission or credentials, worth retrying, aborted by the caller,
 * a key the contract rejects, or anything else.
 */
export type StorageErrorKind = 'not-found' | 'permission' | 'transient' | 'aborted' | 'invalid-key' | 'other';

/**
 * Events the engine emits, for metrics and status pages. Listeners must not throw; they run
 * synchronously on the engine's path, so they should be cheap.
 */
export interface LstreamEvents {
  /**
   * A sync of the database finished (Litestream counts every sync, changed or not): the shadow WAL
   * is at `pos`, `bytes` new committed WAL bytes were copied to it (0 when `advanced` is false), and
   * the WAL and database files are `walBytes` and `dbBytes` long.
   */
  'db-sync': {
    db: string;
    pos: Pos;
    /** The shadow WAL moved (new frames, a new WAL index or a new generation); replicas were told. */
    advanced: boolean;
    bytes: number;
    walBytes: number;
    dbBytes: number;
    durationMs: number;
  };
  /** A sync of the database failed after `durationMs`. */
  'db-sync-error': { db: string; error: unknown; durationMs: number };
  /** A checkpoint ran (`error` set when it failed). */
  checkpoint: { db: string; mode: CheckpointMode; durationMs: number; error?: unknown };
  /** A new generation started, and why. */
  generation: { db: string; generation: string; reason: string };
  /** A replica made `pos` durable by uploading a segment of `bytes` (uncompressed) bytes. */
  'replica-sync': { db: string; replica: string; pos: Pos; bytes: number; durationMs: number };
  /** A replica failed to sync; `retryInMs` is when it tries again. */
  'replica-error': { db: string; replica: string; error: unknown; retryInMs: number };
  /** A replica wrote a snapshot. */
  snapshot: { db: string; replica: string; generation: string; index: number; bytes: number; durationMs: number };
  /**
   * Unshipped shadow WAL went past `maxShadowWalBytes` and file `index` was dropped; replicas that
   * still needed it take a new snapshot when they recover.
   */
  'shadow-dropped': { db: string; generation: string; index: number; bytes: number };
  /** A replica's validation finished. */
  validation: { db: string; replica: string; ok: boolean; error?: unknown };
  /**
   * A storage call finished (emitted by clients wrapped with `instrumentClient`, as `Db.addReplica`
   * does). A GET finishes when its stream ends, fails or is destroyed, and `bytes` counts what the
   * reader consumed; a PUT counts the stored object's size; a LIST is one listing, however many
   * pages, finished when iteration ends; LIST and DELETE carry no bytes.
   */
  'storage-op': {
    db: string;
    replica: string;
    replicaType: string;
    op: StorageOp;
    bytes: number;
    durationMs: number;
    /** The error the call failed with, the very object the caller received. */
    error?: unknown;
    /** Set exactly when `error` is. */
    errorKind?: StorageErrorKind;
  };
}

/** A typed event emitter for LstreamEvents. */
export class LstreamEmitter {
  readonly #ee = new EventEmitter();

  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof LstreamEvents>(event: K, listener: (e: LstreamEvents[K]) => void): () => void {
    this.#ee.on(event, listener);
    return () => this.#ee.off(event, listener);
  }

  /**
   * Calls every listener of `event` with `payload`. A listener that throws does not disturb the
   * engine's work, nor the other listeners: its error is rethrown on the next tick, where it surfaces
   * as an uncaught exception (a bug in the listener, never hidden).
   */
  emit<K extends keyof LstreamEvents>(event: K, payload: LstreamEvents[K]): void {
    for (const listener of this.#ee.listeners(event) as ((e: LstreamEvents[K]) => void)[]) {
      try {
        listener(payload);
      } catch (err) {
        process.nextTick(() => {
          throw err;
        });
      }
    }
  }
}
