// The WAL tests again without the native WAL helpers: frames checked in JavaScript and pages written
// from the calling thread, as where the binding is not built, and with LSTREAM_WAL_NATIVE=off. They
// are chosen when @ls/wal is first imported; vitest gives each test file its own modules, so setting
// the variable before importing is enough.
import { expect, it } from 'vitest';

process.env.LSTREAM_WAL_NATIVE = 'off';
const { nativePwriteRuns, nativeWalVerifyRun } = await import('./lz4-native.js');
await import('./wal-format.test.js');
await import('./apply.test.js');
await import('./apply-model.test.js');

it('checks WAL frames and writes pages without the binding', () => {
  expect(nativeWalVerifyRun()).toBeUndefined();
  expect(nativePwriteRuns()).toBeUndefined();
});
