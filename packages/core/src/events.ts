import { EventEmitter } from 'node:events';
import type { Pos } from './pos.js';
import type { CheckpointMode } from './sqlite-connection.js';

/**
 * Events the engine emits, for metrics and status pages. Listeners must not throw; they run
 * synchronously on the engine's path, so they should be cheap.
 */
export interface LstreamEvents {
  /** The shadow WAL advanced to `pos` (new committed frames copied, `bytes` of them). */
  'db-sync': { db: string; pos: Pos; bytes: number; walBytes: number; dbBytes: number; durationMs: number };
  /** A sync of the database failed. */
  'db-sync-error': { db: string; error: unknown };
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
  /** A storage call finished (emitted by clients wrapped with `instrumentClient`). */
  'storage-op': { replicaType: string; op: 'GET' | 'PUT' | 'DELETE' | 'LIST'; bytes: number; durationMs: number; error?: unknown };
}

/** A typed event emitter for LstreamEvents. */
export class LstreamEmitter {
  readonly #ee = new EventEmitter();

  /** Subscribes to an event; returns a function that unsubscribes. */
  on<K extends keyof LstreamEvents>(event: K, listener: (e: LstreamEvents[K]) => void): () => void {
    this.#ee.on(event, listener);
    return () => this.#ee.off(event, listener);
  }

  /** Calls every listener of `event` with `payload`. */
  emit<K extends keyof LstreamEvents>(event: K, payload: LstreamEvents[K]): void {
    this.#ee.emit(event, payload);
  }
}
