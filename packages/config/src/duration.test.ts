import { describe, expect, it } from 'vitest';
import { parseGoDuration } from './duration.js';

describe('parseGoDuration', () => {
  it('reads Go duration strings as milliseconds', () => {
    const cases: [string, number][] = [
      ['0', 0],
      ['0s', 0],
      ['-0', 0],
      ['10s', 10_000],
      ['250ms', 250],
      ['1m30s', 90_000],
      ['1h30m', 5_400_000],
      ['24h', 86_400_000],
      ['1.5h', 5_400_000],
      ['.5s', 500],
      ['5.s', 5_000],
      ['1h2m3s4ms', 3_723_004],
      ['1000000us', 1_000],
      ['1000µs', 1],
      ['1000μs', 1],
      ['2000000ns', 2],
      ['+3s', 3_000],
      ['-2s', -2_000],
    ];
    for (const [text, ms] of cases) expect(parseGoDuration(text), text).toEqual({ ms });
  });

  it('rejects numbers without a unit and malformed text', () => {
    for (const text of ['', '10', '1.5', 's', '.s', '1d', '10 s', ' 10s', '1s ', '1hour', '1e3s', '--1s', '1s2']) {
      expect(parseGoDuration(text), text).toHaveProperty('error');
    }
    expect(parseGoDuration('10')).toEqual({ error: "duration '10' has no unit" });
  });

  it('rejects nonzero durations below a millisecond', () => {
    expect(parseGoDuration('1ns')).toHaveProperty('error');
    expect(parseGoDuration('400us')).toHaveProperty('error');
    expect(parseGoDuration('600us')).toEqual({ ms: 1 });
  });
});
