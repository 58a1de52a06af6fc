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

describe('restore -timestamp', () => {
  it('reads RFC 3339 times with fractions and offsets, and refuses dates and times that do not exist', async () => {
    const { parseRfc3339 } = await import('../src/commands/restore.js');
    expect(parseRfc3339('2026-11-26T19:38:29Z')?.toISOString()).toBe('2026-11-26T19:38:29.000Z');
    expect(parseRfc3339('2026-11-26T19:38:29.5+02:00')?.toISOString()).toBe('2026-11-26T17:38:29.500Z');
    expect(parseRfc3339('2026-11-26t19:38:29z')?.toISOString()).toBe('2026-11-26T19:38:29.000Z');
    expect(parseRfc3339('2024-02-29T00:00:00-00:00')?.toISOString()).toBe('2024-02-29T00:00:00.000Z');
    for (const bad of [
      '2026-02-30T17:21:58Z', // Date would make it March 2
      '2025-02-29T00:00:00Z', // not a leap year
      '2026-04-31T00:00:00Z',
      '2026-02-28T24:00:00Z', // Date would make it the next day
      '2026-02-28T23:60:00Z',
      '2026-02-28T23:59:60Z',
      '2026-13-01T00:00:00Z',
      '2026-00-01T00:00:00Z',
      '2026-01-00T00:00:00Z',
      '2026-01-01T00:00:00+24:00',
      '2026-01-01T00:00:00',
      '2026-01-01 00:00:00Z',
      'yesterday',
    ]) {
      expect(parseRfc3339(bad), bad).toBeUndefined();
    }
  });
});
