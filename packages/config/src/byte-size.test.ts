import { describe, expect, it } from 'vitest';
import { parseByteSize } from './byte-size.js';

describe('parseByteSize', () => {
  it('reads integers and SI or IEC units', () => {
    const cases: [string, number][] = [
      ['4096', 4096],
      ['10B', 10],
      ['1KB', 1_000],
      ['512MB', 512_000_000],
      ['2GB', 2_000_000_000],
      ['1TB', 1e12],
      ['1KiB', 1024],
      ['512MiB', 512 * 1024 ** 2],
      ['1GiB', 1024 ** 3],
      ['1TiB', 1024 ** 4],
      ['1.5GiB', 1.5 * 1024 ** 3],
      ['512 mb', 512_000_000],
      ['1gib', 1024 ** 3],
    ];
    for (const [text, bytes] of cases) expect(parseByteSize(text), text).toEqual({ bytes });
  });

  it('rejects unknown units and malformed text', () => {
    for (const text of ['', 'MB', '-1MB', '1PB', '1 parsec', '1,5GB', '0x10']) expect(parseByteSize(text), text).toHaveProperty('error');
  });
});
