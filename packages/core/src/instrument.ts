import type { Readable } from 'node:stream';
import type { ListEntry, ReplicaClient } from './client.js';
import { AccessDeniedError, DeleteFailedError, InvalidKeyError, NotFoundError, isAbortError, isRetryable } from './errors.js';
import type { LstreamEmitter, StorageErrorKind, StorageOp } from './events.js';

/** Whose storage calls an instrumented client reports: the database path and the replica name. */
export interface InstrumentLabels {
  db: string;
  replica: string;
}

/**
 * Returns the kind of failure `err` is, from the contract's typed errors: `aborted` (an AbortError),
 * `not-found` (NotFoundError), `permission` (AccessDeniedError), `invalid-key` (InvalidKeyError),
 * `transient` (TransientError or `retryable: true`), and `other` for everything else. A
 * DeleteFailedError whose failures are all of one kind is of that kind.
 */
export function storageErrorKind(err: unknown): StorageErrorKind {
  if (isAbortError(err)) return 'aborted';
  if (NotFoundError.isInstance(err)) return 'not-found';
  if (AccessDeniedError.isInstance(err)) return 'permission';
  if (InvalidKeyError.isInstance(err)) return 'invalid-key';
  if (isRetryable(err)) return 'transient';
  if (DeleteFailedError.isInstance(err)) {
    const kinds = new Set(err.failures.map((f) => storageErrorKind(f.error)));
    const [only] = kinds;
    if (kinds.size === 1 && only !== undefined) return only;
  }
  return 'other';
}

/** Which clients are already instrumented, and for which emitter, so `Db.addReplica` never counts a call twice. */
const instrumented = new WeakMap<object, LstreamEmitter>();

/**
 * Returns `client` wrapped so that every call of the ReplicaClient contract emits one 'storage-op'
 * event on `events`, labelled with `labels` and `client.type`: PUT with the stored size, GET when
 * its stream ends, fails or is destroyed (with the bytes the reader consumed), LIST once per
 * listing when iteration ends, DELETE once per call.
 *
 * The wrapper changes nothing else: arguments (abort signals included) reach the client as given,
 * results are the client's own (the very stream `open` resolved with), errors are the same objects,
 * and every other property (`type`, `capabilities`, `close`, a client's own fields, `instanceof`)
 * reads through to `client`. A client already instrumented for `events` is returned as it is.
 */
export function instrumentClient(client: ReplicaClient, events: LstreamEmitter, labels: InstrumentLabels): ReplicaClient {
  if (instrumented.get(client) === events) return client;
  const { db, replica } = labels;

  const report = (op: StorageOp, started: number, bytes: number, error?: unknown): void => {
    const durationMs = performance.now() - started;
    const replicaType = client.type;
    if (error === undefined) {
      events.emit('storage-op', { db, replica, replicaType, op, bytes, durationMs });
    } else {
      events.emit('storage-op', { db, replica, replicaType, op, bytes, durationMs, error, errorKind: storageErrorKind(error) });
    }
  };

  const put: ReplicaClient['put'] = (...args) => {
    const started = performance.now();
    let result: ReturnType<ReplicaClient['put']>;
    try {
      result = client.put(...args);
    } catch (err) {
      report('PUT', started, 0, err);
      throw err;
    }
    return Promise.resolve(result).then(
      (info) => {
        report('PUT', started, typeof info?.size === 'number' ? info.size : 0);
        return info;
      },
      (err: unknown) => {
        report('PUT', started, 0, err);
        throw err;
      },
    );
  };

  const open: ReplicaClient['open'] = (...args) => {
    const started = performance.now();
    let result: ReturnType<ReplicaClient['open']>;
    try {
      result = client.open(...args);
    } catch (err) {
      report('GET', started, 0, err);
      throw err;
    }
    return Promise.resolve(result).then(
      (stream) => {
        countReads(stream, (bytes, error) => report('GET', started, bytes, error));
        return stream;
      },
      (err: unknown) => {
        report('GET', started, 0, err);
        throw err;
      },
    );
  };

  const list: ReplicaClient['list'] = (...args) => {
    let listing: AsyncIterable<ListEntry>;
    try {
      listing = client.list(...args);
    } catch (err) {
      report('LIST', performance.now(), 0, err);
      throw err;
    }
    return {
      [Symbol.asyncIterator]: () => {
        const started = performance.now();
        let it: AsyncIterator<ListEntry>;
        try {
          it = listing[Symbol.asyncIterator]();
        } catch (err) {
          report('LIST', started, 0, err);
          throw err;
        }
        return countListing(it, started, report);
      },
    };
  };

  const del: ReplicaClient['delete'] = (...args) => {
    const started = performance.now();
    let result: ReturnType<ReplicaClient['delete']>;
    try {
      result = client.delete(...args);
    } catch (err) {
      report('DELETE', started, 0, err);
      throw err;
    }
    return Promise.resolve(result).then(
      () => report('DELETE', started, 0),
      (err: unknown) => {
        report('DELETE', started, 0, err);
        throw err;
      },
    );
  };

  const overrides = new Map<PropertyKey, unknown>([
    ['put', put],
    ['open', open],
    ['list', list],
    ['delete', del],
  ]);
  // Methods of the client run with the client itself as `this` (its private fields do not exist on
  // the proxy); bound once, so reading a method twice gives the same function.
  const bound = new WeakMap<object, unknown>();
  const proxy = new Proxy(client, {
    get(target, prop) {
      if (overrides.has(prop)) return overrides.get(prop);
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      let b = bound.get(value);
      if (b === undefined) {
        b = (value as (...a: unknown[]) => unknown).bind(target);
        bound.set(value, b);
      }
      return b;
    },
  });
  instrumented.set(proxy, events);
  return proxy;
}

/** Returns the byte length of a stream chunk (a Buffer or Uint8Array, or a string after setEncoding). */
function chunkBytes(chunk: unknown): number {
  if (chunk instanceof Uint8Array) return chunk.byteLength;
  if (typeof chunk === 'string') return Buffer.byteLength(chunk);
  return 0;
}

/**
 * Counts the bytes read from `stream` and calls `done` once when it ends, errors or closes early.
 *
 * It watches the stream's own `emit` rather than wrapping the stream: a PassThrough in between would
 * hand the caller another object, with its own buffering, destroy and error semantics, and a 'data'
 * listener would switch the stream into flowing mode before the caller reads. Every chunk a reader
 * consumes passes through `emit('data')`, whether it iterates, pipes or calls `read()`.
 */
function countReads(stream: Readable, done: (bytes: number, error?: unknown) => void): void {
  let bytes = 0;
  let finished = false;
  const hadOwnEmit = Object.prototype.hasOwnProperty.call(stream, 'emit');
  const original = stream.emit;
  const finish = (error?: unknown): void => {
    if (finished) return;
    finished = true;
    if (hadOwnEmit) stream.emit = original;
    else delete (stream as { emit?: unknown }).emit;
    done(bytes, error);
  };
  if (typeof original !== 'function') {
    finish();
    return;
  }
  if (stream.destroyed || stream.readableEnded) {
    finish(stream.errored ?? undefined);
    return;
  }
  stream.emit = function (this: Readable, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'data') bytes += chunkBytes(args[0]);
    else if (event === 'end') finish();
    else if (event === 'error') finish(args[0]);
    // Closed before 'end' and without an error: the reader stopped early (break, destroy()).
    else if (event === 'close') finish(stream.errored ?? undefined);
    return original.call(this, event, ...args);
  } as Readable['emit'];
}

/** Wraps one listing's iterator so that it reports one LIST when iteration finishes, fails or is stopped. */
function countListing(
  it: AsyncIterator<ListEntry>,
  started: number,
  report: (op: StorageOp, started: number, bytes: number, error?: unknown) => void,
): AsyncIterator<ListEntry> {
  let finished = false;
  const finish = (error?: unknown): void => {
    if (finished) return;
    finished = true;
    report('LIST', started, 0, error);
  };
  const wrapped: AsyncIterator<ListEntry> = {
    async next(...args: [] | [unknown]) {
      try {
        const r = await it.next(...args);
        if (r.done) finish();
        return r;
      } catch (err) {
        finish(err);
        throw err;
      }
    },
  };
  // Only what the client's iterator has: for-await calls `return` when the consumer breaks.
  const ret = it.return;
  if (ret) {
    wrapped.return = async (value?: unknown) => {
      try {
        const r = await ret.call(it, value);
        finish();
        return r;
      } catch (err) {
        finish(err);
        throw err;
      }
    };
  }
  const thr = it.throw;
  if (thr) {
    wrapped.throw = async (e?: unknown) => {
      try {
        const r = await thr.call(it, e);
        if (r.done) finish();
        return r;
      } catch (err) {
        finish(err);
        throw err;
      }
    };
  }
  return wrapped;
}
