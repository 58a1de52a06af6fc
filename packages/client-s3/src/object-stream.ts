import { Readable } from 'node:stream';
import { abortReason, backoffDelay, sleep } from '@ls/core';

/** Fetches the object's bytes `start`..`end` (inclusive), or to the end, of the version `etag`. */
export type RangeFetcher = (range: { start: number; end: number | undefined; etag: string | undefined }, signal: AbortSignal) => Promise<Readable>;

/** How the first response of a read looked. */
export interface FirstResponse {
  body: Readable;
  /** Absolute offset of the first byte of `body`. */
  start: number;
  /** Absolute offset of the last byte the read must deliver (inclusive); `start - 1` for nothing. */
  end: number;
  etag: string | undefined;
}

/**
 * A readable stream over one S3 object that survives dropped connections: when the response body
 * fails or ends early, it asks for the missing bytes again (a Range request pinned to the same ETag
 * with If-Match) up to `maxResumes` times, so a long restore download does not die on one reset.
 * Destroyed with an AbortError when `signal` aborts.
 */
export class ResumingObjectStream extends Readable {
  #body: Readable | undefined;
  #pos: number;
  readonly #end: number;
  readonly #etag: string | undefined;
  readonly #fetch: RangeFetcher;
  readonly #maxResumes: number;
  readonly #mapError: (err: unknown) => unknown;
  readonly #isRetryable: (err: unknown) => boolean;
  readonly #signal: AbortSignal | undefined;
  /** Aborts the fetch in flight when the stream is destroyed. */
  readonly #ac = new AbortController();
  #resumes = 0;
  #resuming = false;
  #detach: (() => void) | undefined;
  readonly #onAbort = () => this.destroy(abortReason(this.#signal!));

  constructor(
    first: FirstResponse,
    options: {
      fetch: RangeFetcher;
      maxResumes: number;
      mapError: (err: unknown) => unknown;
      isRetryable: (err: unknown) => boolean;
      signal?: AbortSignal;
    },
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.#pos = first.start;
    this.#end = first.end;
    this.#etag = first.etag;
    this.#fetch = options.fetch;
    this.#maxResumes = options.maxResumes;
    this.#mapError = options.mapError;
    this.#isRetryable = options.isRetryable;
    this.#signal = options.signal;
    if (this.#signal) {
      if (this.#signal.aborted) {
        first.body.destroy();
        process.nextTick(this.#onAbort);
      } else {
        this.#signal.addEventListener('abort', this.#onAbort, { once: true });
      }
    }
    this.#attach(first.body);
  }

  /** Number of times the read was resumed after a dropped connection. */
  get resumes(): number {
    return this.#resumes;
  }

  #attach(body: Readable): void {
    this.#body = body;
    let settled = false;
    const onData = (chunk: Buffer) => {
      // Never deliver more than asked for, even if a server sends extra.
      const room = this.#end + 1 - this.#pos;
      const c = chunk.length > room ? chunk.subarray(0, room) : chunk;
      if (c.length === 0) return;
      this.#pos += c.length;
      if (!this.push(c)) body.pause();
    };
    const finish = (err: unknown) => {
      if (settled) return;
      settled = true;
      this.#detach?.();
      this.#detach = undefined;
      this.#body = undefined;
      if (this.destroyed) return;
      if (this.#pos > this.#end) {
        this.push(null);
        return;
      }
      // The body ended or failed before the last byte: fetch the rest.
      this.#resume(err ?? Object.assign(new Error('response body ended early'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    };
    const onEnd = () => finish(undefined);
    const onError = (err: unknown) => finish(err);
    const onClose = () => finish(undefined);
    body.on('data', onData);
    body.once('end', onEnd);
    body.once('error', onError);
    body.once('close', onClose);
    this.#detach = () => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
      // Keep a late error from an abandoned body from becoming an uncaught exception.
      body.on('error', () => {});
      body.destroy();
    };
  }

  #resume(cause: unknown): void {
    if (this.#resuming || this.destroyed) return;
    if (this.#signal?.aborted) {
      this.destroy(abortReason(this.#signal));
      return;
    }
    if (!this.#isRetryable(cause) || this.#resumes >= this.#maxResumes) {
      this.destroy(this.#mapError(cause) as Error);
      return;
    }
    this.#resuming = true;
    const attempt = this.#resumes++;
    void (async () => {
      try {
        await sleep(backoffDelay(attempt), this.#ac.signal);
        const body = await this.#fetch({ start: this.#pos, end: this.#end, etag: this.#etag }, this.#ac.signal);
        this.#resuming = false;
        if (this.destroyed) {
          body.on('error', () => {});
          body.destroy();
          return;
        }
        this.#attach(body);
      } catch (err) {
        this.#resuming = false;
        if (this.destroyed) return;
        if (this.#signal?.aborted) this.destroy(abortReason(this.#signal));
        else if (this.#isRetryable(err) && this.#resumes < this.#maxResumes) this.#resume(err);
        else this.destroy(this.#mapError(err) as Error);
      }
    })();
  }

  override _read(): void {
    this.#body?.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#ac.abort();
    this.#detach?.();
    this.#detach = undefined;
    this.#body = undefined;
    callback(err);
  }
}
