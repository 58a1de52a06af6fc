import { LstreamError } from '@ls/wal';

export {
  ChecksumMismatchError,
  CorruptDataError,
  LstreamError,
  Lz4FrameError,
  PageSizeMismatchError,
  WalFormatError,
} from '@ls/wal';

/** Raised by a ReplicaClient when a key does not exist. `key` names it. */
export class NotFoundError extends LstreamError {
  constructor(
    readonly key: string,
    options?: { cause?: unknown; message?: string },
  ) {
    super('ENOTFOUND', options?.message ?? `object not found: ${key}`, options);
  }
}

/**
 * Raised when storage refuses an operation for lack of permission or bad credentials. Permanent:
 * retrying will not help; the message says what to check.
 */
export class AccessDeniedError extends LstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EACCESS', message, options);
  }
}

/**
 * Raised for failures that may succeed when tried again: throttling, server errors, dropped
 * connections. Callers retry these with backoff (see `isRetryable`).
 */
export class TransientError extends LstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ETRANSIENT', message, options);
  }
}

/** Raised when a key or prefix handed to a ReplicaClient is not a valid key (see `assertValidKey`). */
export class InvalidKeyError extends LstreamError {
  constructor(
    readonly key: string,
    reason: string,
  ) {
    super('EINVALIDKEY', `invalid object key ${JSON.stringify(key)}: ${reason}`);
  }
}

/** Raised when a name, position or argument does not have the form lstream requires. */
export class InvalidArgumentError extends LstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EINVALID', message, options);
  }
}

/** Returns true when `err` marks a failure worth retrying (a TransientError, or one carrying `retryable: true`). */
export function isRetryable(err: unknown): boolean {
  if (TransientError.isInstance(err)) return true;
  return typeof err === 'object' && err !== null && (err as { retryable?: unknown }).retryable === true;
}

/** Returns true when `err` is the rejection of an aborted operation (an `AbortError`). */
export function isAbortError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError';
}

/** Throws the signal's abort reason, as an `AbortError`, when `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** Returns the error to reject with for an aborted `signal`: its reason when that is an AbortError. */
export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (isAbortError(r)) return r as Error;
  const err = new DOMException('The operation was aborted', 'AbortError');
  return Object.assign(err, { cause: r });
}

/**
 * Settles like `p`, or rejects with the abort reason as soon as `signal` aborts, for a call that cannot
 * be cancelled itself. The call goes on in the background; its own later failure is ignored then
 * (the caller has its answer), so it cannot surface as an unhandled rejection.
 */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(abortReason(signal));
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      p.catch(() => {});
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Raised by `ReplicaClient.delete` when some keys could not be deleted; `failures` names each one. */
export class DeleteFailedError extends LstreamError {
  constructor(readonly failures: readonly { key: string; error: unknown }[]) {
    const shown = failures.slice(0, 5).map((f) => `${f.key} (${f.error instanceof Error ? f.error.message : String(f.error)})`);
    const more = failures.length > 5 ? ` and ${failures.length - 5} more` : '';
    super('EDELETE', `failed to delete ${failures.length} object(s): ${shown.join(', ')}${more}`, {
      cause: failures[0]?.error,
    });
  }
}

/** Raised when a replica cannot make progress for a reason retrying will not fix. */
export class ReplicaError extends LstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EREPLICA', message, options);
  }
}
