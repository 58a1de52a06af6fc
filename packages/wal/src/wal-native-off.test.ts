// The WAL tests again without the native WAL helpers: frames checked in JavaScript and pages written
// from the calling thread, as where the binding is not built, and with LSTREAM_WAL_NATIVE=off. They
// are chosen when @ls/wal is first imported; vitest gives each test file its own modules, so setting
// the variable before importing is enough.
import { expect, it } from 'vitest';

process.env.LSTREAM_WAL_NATIVE = 'off';
const { nativeAlignGap, nativePwriteRuns, nativeWalVerifyRun } = await import('./lz4-native.js');
const { allocAligned, directIoAvailable, directWritable } = await import('./direct-io.js');
const { allocHuge } = await import('./huge-pages.js');
await import('./wal-format.test.js');
await import('./apply.test.js');
await import('./apply-model.test.js');

it('checks WAL frames and writes pages without the binding', () => {
  expect(nativeWalVerifyRun()).toBeUndefined();
  expect(nativePwriteRuns()).toBeUndefined();
});

it('writes through the page cache without the binding: memory alignment cannot be known', () => {
  expect(nativeAlignGap()).toBeUndefined();
  expect(directIoAvailable()).toBe(false);
  expect(directWritable(allocAligned(8192), 0)).toBe(false);
});

it('hands out ordinary memory for large buffers without the binding (no huge-page advice can be given)', () => {
  const b = allocHuge(4 * 1024 * 1024);
  expect(b.length).toBe(4 * 1024 * 1024);
  expect(b.byteOffset).toBe(0);
});
