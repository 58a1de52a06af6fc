import { describe, expect, it } from 'vitest';
import { isAbortError, raceAbort } from './errors.js';

describe('raceAbort', () => {
  it('settles like the call when the signal does not abort', async () => {
    await expect(raceAbort(Promise.resolve(7), new AbortController().signal)).resolves.toBe(7);
    await expect(raceAbort(Promise.reject(new Error('boom')), new AbortController().signal)).rejects.toThrow('boom');
    await expect(raceAbort(Promise.resolve(8), undefined)).resolves.toBe(8);
  });

  it('rejects with an AbortError when the signal aborts first, and the call failing later is not an unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (const abortFirst of [false, true]) {
        const ac = new AbortController();
        if (abortFirst) ac.abort();
        let fail!: (e: Error) => void;
        const call = new Promise<number>((_, reject) => (fail = reject));
        const raced = raceAbort(call, ac.signal);
        if (!abortFirst) ac.abort();
        const err = await raced.catch((e: unknown) => e);
        expect(isAbortError(err)).toBe(true);
        fail(new Error('the call failed after the abort'));
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
