import { describe, expect, it } from 'vitest';
import { isAbortError } from './errors.js';
import { BodyError, PartReader, nextOrAbort } from './part-reader.js';
import { rejection } from '@ls/test-support/helpers';

async function* chunks(...parts: (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? Buffer.from(p) : p;
}

/** An iterator whose next() never settles, as a producer stuck on a slow source. */
function stuck(): AsyncIterable<Uint8Array> & { returned: boolean } {
  const it = {
    returned: false,
    [Symbol.asyncIterator]: () => ({
      next: () => new Promise<IteratorResult<Uint8Array>>(() => {}),
      return: async () => {
        it.returned = true;
        return { done: true as const, value: undefined };
      },
    }),
  };
  return it;
}

describe('PartReader', () => {
  it('cuts chunks into parts of the size asked, the last one short, then empty', async () => {
    const reader = new PartReader(chunks('abc', '', 'defgh', 'ij'), undefined);
    expect((await reader.next(4)).toString()).toBe('abcd');
    expect(reader.buffered).toBe(4);
    expect((await reader.next(2)).toString()).toBe('ef');
    expect((await reader.next(10)).toString()).toBe('ghij');
    expect((await reader.next(10)).length).toBe(0);
    expect((await reader.next(10)).length).toBe(0);
  });

  it('copies chunks, so a producer may reuse its buffer once asked for the next one', async () => {
    const buf = Buffer.alloc(3);
    async function* reusing(): AsyncGenerator<Uint8Array> {
      for (const c of ['abc', 'def', 'ghi']) {
        buf.write(c);
        yield buf;
      }
    }
    const reader = new PartReader(reusing(), undefined);
    const first = await reader.next(4);
    const second = await reader.next(5);
    expect([first.toString(), second.toString()]).toEqual(['abcd', 'efghi']);
  });

  it('rejects with the body error wrapped in BodyError, and then reports the end', async () => {
    const boom = new Error('body failed');
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('ab');
      throw boom;
    }
    const reader = new PartReader(failing(), undefined);
    const err = await rejection(reader.next(4));
    expect(err).toBeInstanceOf(BodyError);
    expect((err as BodyError).error).toBe(boom);
    expect((await reader.next(4)).length).toBe(0);
  });

  it('rejects with an AbortError at once when the signal aborts while the producer is stuck', async () => {
    const ac = new AbortController();
    const body = stuck();
    const reader = new PartReader(body, ac.signal);
    const pending = reader.next(4);
    ac.abort();
    const err = await rejection(pending);
    expect(isAbortError(err), String(err)).toBe(true);
    expect(err).not.toBeInstanceOf(BodyError);
    reader.close();
    await Promise.resolve();
    expect(body.returned).toBe(true);
  });

  it('close stops an unfinished producer', async () => {
    let finished = false;
    async function* body(): AsyncGenerator<Uint8Array> {
      try {
        for (;;) yield Buffer.from('x');
      } finally {
        finished = true;
      }
    }
    const reader = new PartReader(body(), undefined);
    expect((await reader.next(3)).toString()).toBe('xxx');
    reader.close();
    reader.close();
    await new Promise((r) => setImmediate(r));
    expect(finished).toBe(true);
  });
});

describe('nextOrAbort', () => {
  it('resolves with the next value, and rejects with an AbortError when the signal aborts first', async () => {
    const ac = new AbortController();
    const it = chunks('a')[Symbol.asyncIterator]();
    expect(Buffer.from((await nextOrAbort(it, ac.signal)).value as Uint8Array).toString()).toBe('a');
    const pending = nextOrAbort(stuck()[Symbol.asyncIterator](), ac.signal);
    ac.abort(new Error('stop'));
    const err = await rejection(pending);
    expect(isAbortError(err)).toBe(true);
    expect((err as Error).cause).toEqual(new Error('stop'));
    expect(isAbortError(await rejection(nextOrAbort(it, ac.signal)))).toBe(true);
  });

  it('without a signal (a put called without one), resolves with each value to the end', async () => {
    const it = chunks('a', 'b')[Symbol.asyncIterator]();
    const got: string[] = [];
    for (let r = await nextOrAbort(it, undefined); !r.done; r = await nextOrAbort(it, undefined)) got.push(Buffer.from(r.value as Uint8Array).toString());
    expect(got).toEqual(['a', 'b']);
  });
});
