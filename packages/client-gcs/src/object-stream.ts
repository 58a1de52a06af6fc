import { Readable } from 'node:stream';
import { abortReason, backoffDelay, sleep } from '@ls/core';

/** Fetches the bytes of the object's pinned generation from absolute offset `start` to `end` (inclusive). */
export type RangeFetcher = (range: { start: number; end: number }, signal: AbortSignal) => Promise<{ body: Readable; start: number }>;

/** How the first response of a read looked. */
export interface FirstResponse {
  body: Readable;
  /** Absolute offset of the first byte of `body` (0 when the server ignored a Range header). */
  bodyStart: number;
  /** Absolute offset of the first byte the read must deliver. */
  start: number;
  /** Absolute offset of the last byte the read must deliver (inclusive); `start - 1` for nothing. */
  end: number;
}

/**
 * A readable stream over one GCS object generation that survives dropped connections: when the
 * response body fails or ends early, it asks for the missing bytes again (a ranged read of the same
 * generation) up to `maxResumes` times, so a long restore download does not die on one reset. Bytes
 * before `start` that a server sends anyway (one that ignores Range) are skipped; bytes past `end`
 * are never delivered. Destroyed with an AbortError when `signal` aborts.
 */
export class ResumingObjectStream extends Readable {
  #body: Readable | undefined;
  /** Absolute offset of the next byte the current body will give. */
  #bodyPos: number;
  /** Absolute offset of the next byte to deliver. */
  #pos: number;
  readonly #end: number;
  readonly #fetch: RangeFetcher;
  readonly #maxResumes: number;
  readonly #mapError: (err: unknown) => unknown;
  readonly #isRetryable: (err: unknown) => boolean;
  readonly #signal: AbortSignal | undefined;
  readonly #idleTimeoutMs: number;
  #idleTimer: NodeJS.Timeout | undefined;
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
      signal?: AbortSignal | undefined;
      /** Time a body may go without a byte, while bytes are wanted, before it counts as dropped. */
      idleTimeoutMs: number;
    },
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.#bodyPos = first.bodyStart;
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

  /** Number of times the read was resumed after a dropped connection. */
  get resumes(): number {
    return this.#resumes;
  }

  /**
   * (Re)starts the idle timer of the current body. Needed because the SDK's HTTP layer (node-fetch 2)
   * never ends or fails a body whose connection drops before Content-Length bytes arrived: without
   * it such a read would wait forever.
   */
  #armIdle(onIdle: () => void): void {
    clearTimeout(this.#idleTimer);
    // Not unref'd: when the dropped connection was the last thing holding the process open, this
    // timer is what lets the read fail and be resumed instead of the process exiting mid-read.
    this.#idleTimer = setTimeout(onIdle, this.#idleTimeoutMs);
  }

  #attach(body: Readable): void {
    this.#body = body;
    let settled = false;
    const onIdle = () =>
      finish(Object.assign(new Error(`no data for ${this.#idleTimeoutMs} ms: the connection is presumed dropped`), { code: 'ETIMEDOUT' }));
    this.#onIdle = onIdle;
    const onData = (chunk: Buffer) => {
      this.#armIdle(onIdle);
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
      // Keep a late error from an abandoned body from becoming an uncaught exception.
      body.on('error', () => {});
      body.destroy();
    };
    this.#armIdle(onIdle);
    if (this.#pos > this.#end) process.nextTick(() => finish(undefined));
  }

  #onIdle: (() => void) | undefined;

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
        if (this.destroyed) return;
        if (this.#signal?.aborted) this.destroy(abortReason(this.#signal));
        else if (this.#isRetryable(err) && this.#resumes < this.#maxResumes) this.#resume(err);
        else this.destroy(this.#mapError(err) as Error);
      }
    })();
  }

  override _read(): void {
    if (this.#body && this.#onIdle) {
      this.#armIdle(this.#onIdle);
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
