import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { TransientError, isAbortError, isRetryable } from './errors.js';
import { ResumingReadStream, type ResumeFetcher, type ResumingReadStreamOptions } from './resuming-read-stream.js';
import { readAll, rejection } from '@ls/test-support/helpers';

const DATA = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');

/** A body that gives `bytes` in two chunks, then ends, fails with `error`, or stalls (never ends). */
function body(bytes: Buffer, then: 'end' | 'stall' | Error = 'end'): Readable {
  const b = new PassThrough();
  const half = Math.ceil(bytes.length / 2);
  b.write(bytes.subarray(0, half));
  b.write(bytes.subarray(half));
  if (then === 'end') b.end();
  else if (then !== 'stall') setImmediate(() => b.destroy(then));
  return b;
}

/** A fetcher serving DATA from the range asked, whose first bodies break as `breaks` says, recording each range. */
function fetcher(breaks: ('end' | 'stall' | Error)[] = []) {
  const ranges: { start: number; end: number }[] = [];
  const fetch: ResumeFetcher = async (range) => {
    ranges.push(range);
    const then = breaks.shift() ?? 'end';
    const to = then === 'end' ? range.end + 1 : range.start + 4;
    return { body: body(DATA.subarray(range.start, to), then), start: range.start };
  };
  return { fetch, ranges };
}

/** Retries what a client's own isRetryable would: transient errors, and bodies that ended early. */
const retryable = (err: unknown) => isRetryable(err) || (err as { code?: unknown }).code === 'ERR_STREAM_PREMATURE_CLOSE';

function options(fetch: ResumeFetcher, extra: Partial<ResumingReadStreamOptions> = {}): ResumingReadStreamOptions {
  return { fetch, maxResumes: 3, isRetryable: retryable, mapError: (err) => new Error('mapped', { cause: err }), ...extra };
}

const reset = () => new TransientError('connection reset');

describe('ResumingReadStream', () => {
  it('delivers a body that arrives whole without fetching again', async () => {
    const { fetch, ranges } = fetcher();
    const stream = new ResumingReadStream({ body: body(DATA), start: 0, end: DATA.length - 1 }, options(fetch));
    expect((await readAll(stream)).equals(DATA)).toBe(true);
    expect(stream.resumes).toBe(0);
    expect(ranges).toEqual([]);
  });

  it('fetches the missing bytes from where a body that ended early stopped', async () => {
    const { fetch, ranges } = fetcher();
    const stream = new ResumingReadStream({ body: body(DATA.subarray(2, 10)), start: 2, end: 29 }, options(fetch));
    expect((await readAll(stream)).equals(DATA.subarray(2, 30))).toBe(true);
    expect(stream.resumes).toBe(1);
    expect(ranges).toEqual([{ start: 10, end: 29 }]);
  });

  it('skips bytes before start a server sent anyway, and never delivers bytes past end', async () => {
    const { fetch } = fetcher();
    const stream = new ResumingReadStream({ body: body(DATA), bodyStart: 0, start: 5, end: 20 }, options(fetch));
    expect((await readAll(stream)).equals(DATA.subarray(5, 21))).toBe(true);
    expect(stream.resumes).toBe(0);
  });

  it('fails with mapError of a failure that is not retryable, without fetching again', async () => {
    const { fetch, ranges } = fetcher();
    const denied = new Error('denied');
    const stream = new ResumingReadStream({ body: body(DATA.subarray(0, 4), denied), start: 0, end: 9 }, options(fetch));
    const err = await rejection(readAll(stream));
    expect((err as Error).message).toBe('mapped');
    expect((err as Error).cause).toBe(denied);
    expect(ranges).toEqual([]);
  });

  it('fails with mapError of the last failure once resumes are spent', async () => {
    const last = reset();
    const { fetch, ranges } = fetcher([last]);
    const stream = new ResumingReadStream({ body: body(DATA.subarray(0, 4), reset()), start: 0, end: 29 }, options(fetch, { maxResumes: 1 }));
    const err = await rejection(readAll(stream));
    expect((err as Error).cause).toBe(last);
    expect(stream.resumes).toBe(1);
    expect(ranges).toHaveLength(1);
  });

  it('resumes after a body or a fetch that failed in a retryable way, and fails with mapError of one that did not', async () => {
    let calls = 0;
    const flaky: ResumeFetcher = async (range) => {
      if (calls++ === 0) throw reset();
      return { body: body(DATA.subarray(range.start, range.end + 1)), start: range.start };
    };
    const stream = new ResumingReadStream({ body: body(DATA.subarray(0, 4), reset()), start: 0, end: 9 }, options(flaky));
    expect((await readAll(stream)).equals(DATA.subarray(0, 10))).toBe(true);
    expect(stream.resumes).toBe(2);

    const gone = new Error('object replaced');
    const failing: ResumeFetcher = async () => {
      throw gone;
    };
    const broken = new ResumingReadStream({ body: body(DATA.subarray(0, 4), reset()), start: 0, end: 9 }, options(failing));
    expect(((await rejection(readAll(broken))) as Error).cause).toBe(gone);
  });

  it('is destroyed with an AbortError when the signal aborts, before or during the read', async () => {
    const { fetch, ranges } = fetcher();
    const ac = new AbortController();
    const stalled = new ResumingReadStream({ body: body(DATA.subarray(0, 4), 'stall'), start: 0, end: 9 }, options(fetch, { signal: ac.signal }));
    const reading = readAll(stalled);
    setImmediate(() => ac.abort());
    expect(isAbortError(await rejection(reading))).toBe(true);

    const early = new ResumingReadStream({ body: body(DATA), start: 0, end: DATA.length - 1 }, options(fetch, { signal: ac.signal }));
    expect(isAbortError(await rejection(readAll(early)))).toBe(true);
    expect(ranges).toEqual([]);
  });

  it('treats a body silent for idleTimeoutMs as dropped, with an idle timer that keeps the process alive', async () => {
    const { fetch, ranges } = fetcher();
    const seen: unknown[] = [];
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const stream = new ResumingReadStream(
      { body: body(DATA.subarray(0, 4), 'stall'), start: 0, end: 9 },
      options(fetch, { idleTimeoutMs: 20, isRetryable: (err) => (seen.push(err), true) }),
    );
    // Not unref'd: a dropped connection may be the last thing holding the process open.
    expect(timers()).toBe(before + 1);
    expect((await readAll(stream)).equals(DATA.subarray(0, 10))).toBe(true);
    expect(ranges).toEqual([{ start: 4, end: 9 }]);
    expect(seen).toEqual([expect.objectContaining({ code: 'ETIMEDOUT' })]);
  });

  it('does not count silence as dropped while the consumer is behind', async () => {
    const { fetch, ranges } = fetcher();
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    const stream = new ResumingReadStream({ body: body(big), start: 0, end: big.length - 1 }, options(fetch, { idleTimeoutMs: 10 }));
    await new Promise((r) => setTimeout(r, 50));
    expect((await readAll(stream)).equals(big)).toBe(true);
    expect(stream.resumes).toBe(0);
    expect(ranges).toEqual([]);
  });
});
