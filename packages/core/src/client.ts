import type { Readable } from 'node:stream';

/** An object in a replica's storage. */
export interface ObjectInfo {
  /** Key relative to the client's root, `/`-separated. */
  key: string;
  /** Size in bytes as stored. */
  size: number;
  /** When storage recorded the object (file mtime, S3 LastModified, GCS timeCreated). */
  createdAt: Date;
}

/** One entry of a listing: an object, or (with a delimiter) a common prefix ending in the delimiter. */
export type ListEntry = ({ type: 'object' } & ObjectInfo) | { type: 'prefix'; key: string };

/** What a client can do beyond the mandatory contract. The conformance suite skips what is not declared. */
export interface ClientCapabilities {
  /** `list` honours `delimiter: '/'`, yielding common prefixes instead of walking every object under them. */
  listDelimiter: boolean;
  /** Keys one delete request to storage carries; `delete` splits larger batches itself. */
  deleteMaxBatch: number;
  /** `open` honours `range`. */
  rangeRead: boolean;
  /** Granularity of `createdAt`, in milliseconds (1000 where storage keeps whole seconds). */
  timestampResolutionMs: number;
}

/** Options of `ReplicaClient.put`. */
export interface PutOptions {
  signal?: AbortSignal;
  /** The body's length when known in advance; clients may use it to pick an upload method. */
  size?: number;
}

/** Options of `ReplicaClient.open`. */
export interface OpenOptions {
  signal?: AbortSignal;
  /**
   * Read only bytes `start` to `end` (inclusive, like HTTP ranges); needs `capabilities.rangeRead`. An
   * end past the object stops at its last byte; a start past it gives no byte. A range that is not
   * one (negative or fractional, or an end before its start) rejects with InvalidArgumentError.
   */
  range?: { start: number; end?: number };
}

/** Options of `ReplicaClient.list`. */
export interface ListOptions {
  signal?: AbortSignal;
  /** With `'/'`, keys that continue past the next `/` after the prefix are rolled up into one prefix entry. */
  delimiter?: '/';
}

/**
 * A replica's storage: a small object-store adapter. Core maps generations, snapshots and WAL segments
 * onto keys (see the layout functions), so a client implements only these storage primitives.
 *
 * Keys are relative to the client's root (a directory, bucket prefix, ...) and use `/`; every method
 * rejects an invalid key with InvalidKeyError (see `assertValidKey`) before touching storage. Every
 * method takes an optional AbortSignal and rejects with an `AbortError` once it is aborted. Failures
 * worth retrying are TransientError (or carry `retryable: true`); permission problems are
 * AccessDeniedError; every wrapped error keeps the original as `cause`.
 *
 * Callers never store a key that is also the directory of other keys (`a/b` beside `a/b/c`); the
 * replica layout never does, and file-system clients cannot hold both.
 */
export interface ReplicaClient {
  /** Storage kind: `file`, `s3`, `gcs`, ...; also the default replica name. */
  readonly type: string;
  /** What this client supports beyond the mandatory contract. */
  readonly capabilities: Readonly<ClientCapabilities>;

  /**
   * Stores `body` under `key`, replacing any object there, and resolves with the stored object's
   * size and timestamp. The object becomes visible whole or not at all: a failed, aborted or
   * interrupted put leaves the previous object (or none) in place. Rejects with the body's own error
   * when iterating the body throws.
   */
  put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, options?: PutOptions): Promise<ObjectInfo>;

  /**
   * Opens `key` for reading. Rejects with NotFoundError, before any byte is read, when the key does
   * not exist. The returned stream yields the stored bytes and is destroyed with an AbortError when
   * the signal aborts.
   */
  open(key: string, options?: OpenOptions): Promise<Readable>;

  /**
   * Lists objects whose keys start with `prefix` (a plain string prefix, not only whole segments),
   * sorted by key bytes, each with size and timestamp. Pages are fetched lazily: a consumer that
   * stops iterating stops further requests. The empty prefix lists every object; a prefix no key
   * starts with yields nothing. An abort ends the listing with an AbortError. With
   * `delimiter: '/'` (when `capabilities.listDelimiter`), entries below the next `/` after the prefix
   * come as one `prefix` entry in sorted position, and only prefixes holding at least one object.
   */
  list(prefix: string, options?: ListOptions): AsyncIterable<ListEntry>;

  /**
   * Deletes every key in `keys`, any number of them; keys that do not exist are not an error.
   * Rejects when storage fails to delete any key, naming every key that failed.
   */
  delete(keys: readonly string[], options?: { signal?: AbortSignal }): Promise<void>;

  /** Releases connections and handles. Optional. */
  close?(): Promise<void>;
}
