import { abortReason, raceAbort } from './errors.js';

/**
 * Wraps an error thrown by the body a PartReader reads, so a ReplicaClient can tell it from its own
 * storage errors and rethrow it unchanged (`err.error`), never mapped to a storage error.
 */
export class BodyError {
  constructor(readonly error: unknown) {}
}

/**
 * Cuts an async iterable of chunks into parts of a requested size, for ReplicaClient
 * implementations that upload a body in parts (multipart, resumable chunks). Copies into one buffer
 * per part: memory stays at one part plus the chunk being read. Errors of the body come out
 * wrapped in BodyError; an abort of `signal` rejects at once with its AbortError, without waiting
 * for a stuck producer. Callers must `close()` it when they stop before the body ends.
 */
export class PartReader {
  readonly #it: AsyncIterator<Uint8Array>;
  readonly #signal: AbortSignal | undefined;
  #pending: Uint8Array | undefined;
  #done = false;
  #closed = false;

  constructor(body: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined) {
    this.#it = body[Symbol.asyncIterator]();
    this.#signal = signal;
  }

  /** Returns the number of bytes taken from the body so far that have not been handed out yet. */
  get buffered(): number {
    return this.#pending?.byteLength ?? 0;
  }

  /**
   * Resolves with the next part: exactly `size` bytes, fewer only when the body ends (an empty
   * buffer once it has ended). Rejects with BodyError when the body fails.
   */
  async next(size: number): Promise<Buffer> {
    // Chunks are copied as they arrive (a producer may reuse its buffer once asked for the next
    // chunk, while this part is still being uploaded), and joined once the part is complete, so a
    // small body never holds a whole part's worth of memory.
    const pieces: Buffer[] = [];
    let filled = 0;
    while (filled < size) {
      let chunk = this.#pending;
      this.#pending = undefined;
      if (chunk === undefined) {
        if (this.#done) break;
        const r = await this.#pull();
        if (r.done) {
          this.#done = true;
          break;
        }
        chunk = r.value;
      }
      if (chunk.byteLength === 0) continue;
      const take = Math.min(size - filled, chunk.byteLength);
      pieces.push(Buffer.from(chunk.subarray(0, take)));
      filled += take;
      if (take < chunk.byteLength) this.#pending = chunk.subarray(take);
    }
    return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, filled);
  }

  /** Stops the producer without waiting for it (it may be stuck in the await that caused an abort). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = undefined;
    // The producer's own cleanup failing is not this reader's error: its caller has already
    // stopped reading (the part failed or was aborted) and reports that instead.
    if (!this.#done) this.#it.return?.()?.catch(() => {});
  }

  async #pull(): Promise<IteratorResult<Uint8Array>> {
    const signal = this.#signal;
    try {
      if (!signal) return await this.#it.next();
      return await nextOrAbort(this.#it, signal);
    } catch (err) {
      if (signal?.aborted) throw abortReason(signal);
      this.#done = true; // a generator that threw is finished
      throw new BodyError(err);
    }
  }
}

/**
 * Awaits the iterator's next value, or rejects with the signal's AbortError as soon as `signal`
 * aborts (see raceAbort); without a signal, simply the next value. A fresh listener per call, removed when the value arrives: racing every chunk against one
 * long-lived abort promise would keep every chunk reachable from that promise until the read ends
 * (a 1 GiB snapshot put held 500 MiB).
 */
export function nextOrAbort<T>(it: AsyncIterator<T>, signal: AbortSignal | undefined): Promise<IteratorResult<T>> {
  // Checked first so an aborted read does not even ask the iterator for its next value.
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  return raceAbort(it.next(), signal);
}
