// The WAL tests again with WAL frames checked in JavaScript: the path used where the native binding
// is not built, and with LSTREAM_WAL_CHECK=js. The check is chosen when @ls/wal is first imported;
// vitest gives each test file its own modules, so setting the variable before importing is enough.
import { expect, it } from 'vitest';

process.env.LSTREAM_WAL_CHECK = 'js';
const { nativeWalVerifyRun } = await import('./lz4-native.js');
await import('./wal-format.test.js');
await import('./apply.test.js');
await import('./apply-model.test.js');

it('checks WAL frames in JavaScript', () => {
  expect(nativeWalVerifyRun()).toBeUndefined();
});
