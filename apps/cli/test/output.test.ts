import { describe, expect, it } from 'vitest';
import { formatDuration } from '../src/output.js';

describe('formatDuration', () => {
  it('prints lag as Litestream does: truncated by magnitude, in Go duration syntax', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [0.0005, '500ns'],
      [0.0123, '12µs'],
      [999.6, '999ms'],
      [1000, '1s'], // not past 1 s: truncated to milliseconds, and Go writes 1000ms as 1s
      [1000.04, '1s'],
      [3_249, '3.2s'],
      [9_999, '9.9s'],
      [12_100, '12s'],
      [59_960, '59s'],
      [119_600, '1m59s'],
      [3_605_000, '1h0m5s'],
      [90_061_000, '25h1m1s'],
      [-5_230, '-5.2s'],
      [-42, '-42ms'],
    ];
    for (const [ms, text] of cases) expect(formatDuration(ms), String(ms)).toBe(text);
  });
});
