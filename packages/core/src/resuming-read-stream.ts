import { Readable } from 'node:stream';
import { abortReason } from './errors.js';
import { backoffDelay, sleep } from './retry.js';

/**
 * Fetches the object's bytes from absolute offset `start` to `end` (inclusive) again, after a read
 * broke. Implementations pin the request to the version the read started on (S3 If-Match on the
 * ETag, a GCS generation), so a replaced object is never stitched together, and resolve with the
 * body and the absolute offset of its first byte. Rejections go through the stream's `isRetryable`.
 */
export type ResumeFetcher = (range: { start: number; end: number }, signal: AbortSignal) => Promise<{ body: Readable; start: number }>;

/** How the first response of a read looked. */
export interface FirstResponse {
  body: Readable;
  /** Absolute offset of the first byte of `body`; `start` when omitted (0 when a server ignored a Range header). */
  bodyStart?: number | undefined;
  /** Absolute offset of the first byte the read must deliver. */
  start: number;
  /** Absolute offset of the last byte the read must deliver (inclusive); `start - 1` for nothing. */
  end: number;
}

/** How a ResumingReadStream resumes and fails. */
export interface ResumingReadStreamOptions {
  /** Fetches the missing bytes after a break. */
  fetch: ResumeFetcher;
  /** Most resumes of one read; the break after that destroys the stream. */
  maxResumes: number;
  /** Tells which failures of a body or of `fetch` are worth resuming after. */
  isRetryable: (err: unknown) => boolean;
  /** Turns the failure that ends the read into the error the stream is destroyed with. */
  mapError: (err: unknown) => unknown;
  /** Destroys the stream with an AbortError when it aborts. */
  signal?: AbortSignal | undefined;
  /**
   * Time a body may go without a byte, while bytes are wanted, before it counts as dropped (an
   * ETIMEDOUT error, then resumed like any other break). For HTTP layers that never end or fail a
   * body whose connection drops (node-fetch 2); no timer when omitted.
   */
  idleTimeoutMs?: number | undefined;
}

/**
 * Returns a readable stream over a ranged object read that survives dropped connections, for
 * ReplicaClient implementations of `open`: when the response body fails or ends before the last
 * byte, it fetches the missing bytes again through `options.fetch` (after a backoff) up to
 * `maxResumes` times, so a long restore download does not die on one reset. Bytes before `start`
 * that a server sends anyway (one that ignores Range) are skipped; bytes past `end` are never
 * delivered. Destroyed with an AbortError when `signal` aborts, and with `mapError` of the failure
 * once resuming is not retryable or resumes are spent.
 */
export class ResumingReadStream extends Readable {
  #body: Readable | undefined;
  /** Absolute offset of the next byte the current body will give. */
  #bodyPos: number;
  /** Absolute offset of the next byte to deliver. */
  #pos: number;
  readonly #end: number;
  readonly #fetch: ResumeFetcher;
  readonly #maxResumes: number;
  readonly #mapError: (err: unknown) => unknown;
  readonly #isRetryable: (err: unknown) => boolean;
  readonly #signal: AbortSignal | undefined;
  readonly #idleTimeoutMs: number | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  /** Treats the current body as dropped; set while a body is attached. */
  #onIdle: (() => void) | undefined;
  /** Aborts the fetch in flight when the stream is destroyed. */
  readonly #ac = new AbortController();
  #resumes = 0;
  #resuming = false;
  #detach: (() => void) | undefined;
  readonly #onAbort = () => this.destroy(abortReason(this.#signal!));

  constructor(first: FirstResponse, options: ResumingReadStreamOptions) {
    super({ highWaterMark: 1024 * 1024 });
    this.#bodyPos = first.bodyStart ?? first.start;
    this.#pos = first.start;
    this.#end = first.end;
    this.#fetch = options.fetch;
    this.#maxResumes = options.maxResumes;
    this.#mapError = options.mapError;
    this.#isRetryable = options.isRetryable;
    this.#signal = options.signal;
    this.#idleTimeoutMs = options.idleTimeoutMs;
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

  /** Returns the number of times the read was resumed after a dropped connection. */
  get resumes(): number {
    return this.#resumes;
  }

  /** (Re)starts the idle timer of the current body, when there is an idle timeout. */
  #armIdle(): void {
    if (this.#idleTimeoutMs === undefined || this.#onIdle === undefined) return;
    clearTimeout(this.#idleTimer);
    // Not unref'd: when the dropped connection was the last thing holding the process open, this
    // timer is what lets the read fail and be resumed instead of the process exiting mid-read.
    this.#idleTimer = setTimeout(this.#onIdle, this.#idleTimeoutMs);
  }

  #attach(body: Readable): void {
    this.#body = body;
    let settled = false;
    this.#onIdle = () =>
      finish(Object.assign(new Error(`no data for ${this.#idleTimeoutMs} ms: the connection is presumed dropped`), { code: 'ETIMEDOUT' }));
    const onData = (chunk: Buffer) => {
      this.#armIdle();
      const chunkStart = this.#bodyPos;
      this.#bodyPos += chunk.length;
      const from = Math.max(this.#pos, chunkStart);
      const to = Math.min(this.#end + 1, this.#bodyPos);
      if (to <= from) return;
      const c = chunk.subarray(from - chunkStart, to - chunkStart);
      this.#pos = to;
      if (!this.push(c)) {
        // The consumer is behind: silence from the body is expected until it reads again.
        clearTimeout(this.#idleTimer);
        body.pause();
      }
    };
    const finish = (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(this.#idleTimer);
      this.#onIdle = undefined;
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
      // An abandoned body's late error is not the read's: the read has ended, failed or moved on
      // to a new body, and already reports its own outcome. Without a listener it would crash the
      // process as an uncaught exception.
      body.on('error', () => {});
      body.destroy();
    };
    this.#armIdle();
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
        const { body, start } = await this.#fetch({ start: this.#pos, end: this.#end }, this.#ac.signal);
        this.#resuming = false;
        if (this.destroyed) {
          body.on('error', () => {});
          body.destroy();
          return;
        }
        this.#bodyPos = start;
        this.#attach(body);
      } catch (err) {
        this.#resuming = false;
        // Destroyed meanwhile: the stream already ended with its own error (or the caller's).
        if (this.destroyed) return;
        if (this.#signal?.aborted) this.destroy(abortReason(this.#signal));
        else if (this.#isRetryable(err) && this.#resumes < this.#maxResumes) this.#resume(err);
        else this.destroy(this.#mapError(err) as Error);
      }
    })();
  }

  override _read(): void {
    if (this.#body) {
      this.#armIdle();
      this.#body.resume();
    }
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.#idleTimer);
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#ac.abort();
    this.#detach?.();
    this.#detach = undefined;
    this.#body = undefined;
    callback(err);
  }
}
