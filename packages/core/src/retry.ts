import { isAbortError, isRetryable, throwIfAborted } from './errors.js';

/** First retry delay of storage calls. */
export const RETRY_BASE_DELAY_MS = 100;
/** Longest delay between two retries of a storage call. */
export const RETRY_MAX_DELAY_MS = 30_000;

/** Returns a jittered exponential backoff delay for the `attempt`-th retry (0-based). */
export function backoffDelay(attempt: number, baseMs = RETRY_BASE_DELAY_MS, maxMs = RETRY_MAX_DELAY_MS): number {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + Math.random() * (cap / 2));
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn`, retrying transient failures (see `isRetryable`) with jittered backoff up to `attempts`
 * tries in all. Permanent errors and aborts are thrown at once.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  options: { attempts?: number; signal?: AbortSignal; onRetry?: (err: unknown, attempt: number, delayMs: number) => void } = {},
): Promise<T> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 0; ; attempt++) {
    throwIfAborted(options.signal);
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt + 1 >= attempts || isAbortError(err) || !isRetryable(err)) throw err;
      const delay = backoffDelay(attempt);
      options.onRetry?.(err, attempt, delay);
      await sleep(delay, options.signal);
    }
  }
}
