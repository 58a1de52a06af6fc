// Every case of lz4-frame.test.ts again, on lz4-napi: the backend used where the liblz4 binding is
// not built (no C compiler or Node headers at install) or liblz4 is missing, and with LSTREAM_LZ4=lz4-napi.
// The backend is chosen when @ls/wal first compresses or decompresses; vitest gives each test file
// its own modules, so setting the variable before importing the suite is enough.
import { expect, it } from 'vitest';

process.env.LSTREAM_LZ4 = 'lz4-napi';
const { lz4Backend } = await import('./lz4-native.js');
await import('./lz4-frame.test.js');

it('runs on lz4-napi', () => {
  expect(lz4Backend()).toEqual({ name: 'lz4-napi', reason: 'LSTREAM_LZ4=lz4-napi' });
});
