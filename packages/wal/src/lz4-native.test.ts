import { execFile } from 'node:child_process';
import { copyFile, mkdir, open, readFile, utimes } from 'node:fs/promises';
import { constants } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test/helpers.js';
import { nativeLz4, nativePwriteRuns, nativeWalVerifyRun } from './lz4-native.js';
import { encodeWalFrame, encodeWalHeader, parseWalHeader } from './wal-format.js';

const run = promisify(execFile);
const nativeDir = fileURLToPath(new URL('../native/', import.meta.url));
const required = process.env.LSTREAM_NATIVE_REQUIRED === '1';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir, cleanup } = await tempDir()));
afterAll(() => cleanup());

describe('the liblz4 binding', () => {
  // Where CI requires the binding, a missing one fails here rather than skipping.
  it.skipIf(!required && !nativeLz4())('tolerates extra arguments and rejects wrong ones without crashing', async () => {
    const lib = nativeLz4();
    expect(lib).toBeDefined();
    const src = Buffer.alloc(100_000, 'abc');
    const dst = Buffer.alloc(lib!.compressBound(src.length));
    const extra = [undefined, {}, 1, 'x', Buffer.alloc(8)] as unknown[];
    const call = lib!.compressAsync as unknown as (...a: unknown[]) => Promise<number>;
    const n = await call(src, dst, ...extra);
    expect(n).toBeGreaterThan(0);
    const out = Buffer.alloc(src.length);
    const dcall = lib!.decompressAsync as unknown as (...a: unknown[]) => Promise<number>;
    expect(await dcall(dst.subarray(0, n), out, Buffer.alloc(16), ...extra)).toBe(src.length);
    expect(out.equals(src)).toBe(true);
    expect(() => (lib!.compress as unknown as (...a: unknown[]) => number)('text', dst)).toThrow(TypeError);
    expect(() => (lib!.compress as unknown as (...a: unknown[]) => number)(src)).toThrow(TypeError);
    // A block too large for its output: liblz4 refuses it (a negative result), writing nothing past the end.
    const small = Buffer.alloc(src.length + 16, 0x5a);
    expect(lib!.decompress(dst.subarray(0, n), small.subarray(0, 1000))).toBeLessThan(0);
    expect(small.subarray(1000).every((b) => b === 0x5a)).toBe(true);
  });
});

describe('the WAL frame check', () => {
  it.skipIf(!required && !nativeWalVerifyRun())('checks a run of frames, and rejects arguments that do not fit without touching memory', () => {
    const check = nativeWalVerifyRun()!;
    expect(check).toBeTypeOf('function');
    const ps = 512;
    const header = { bigEndianChecksum: true, pageSize: ps, checkpointSeq: 1, salt1: 7, salt2: 9 };
    const h = parseWalHeader(encodeWalHeader(header));
    let chain: [number, number] = [h.checksum1, h.checksum2];
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 5; i++) {
      const r = encodeWalFrame(header, i + 1, i === 4 ? 5 : 0, new Uint8Array(ps).fill(i), chain);
      frames.push(r.frame);
      chain = r.chain;
    }
    const buf = Buffer.concat(frames);
    const fs = ps + 24;
    const state = new Uint32Array([h.checksum1, h.checksum2]);
    const pgnos = new Uint32Array(6).fill(0xdead);
    const commits = new Uint32Array(6);
    expect(check(buf, 0, 5, fs, true, 7, 9, state, pgnos, commits)).toBe(5);
    expect([...pgnos]).toEqual([1, 2, 3, 4, 5, 0xdead]);
    expect([...commits]).toEqual([0, 0, 0, 0, 5, 0]);
    expect([...state]).toEqual(chain);
    // A wrong salt or checksum stops the run before that frame, and the chain stays after the last good one.
    state.set([h.checksum1, h.checksum2]);
    expect(check(buf, 0, 5, fs, true, 7, 8, state, pgnos, commits)).toBe(0);
    const bad = Buffer.from(buf);
    bad[2 * fs + 100]! ^= 1;
    expect(check(bad, 0, 5, fs, true, 7, 9, state, pgnos, commits)).toBe(2);
    const call = check as unknown as (...a: unknown[]) => number;
    // More frames than fit in buf or in the output arrays, a bad frame size, wrong types: errors, not overruns.
    expect(() => call(buf, 0, 6, fs, true, 7, 9, state, pgnos, commits)).toThrow(RangeError);
    expect(() => call(buf, fs, 5, fs, true, 7, 9, state, pgnos, commits)).toThrow(RangeError);
    expect(() => call(buf, 0, 5, fs, true, 7, 9, state, pgnos.subarray(0, 4), commits)).toThrow(RangeError);
    expect(() => call(buf, 0, 1, 30, true, 7, 9, state, pgnos, commits)).toThrow(RangeError);
    expect(() => call(buf, 0, 1, fs, true, 7, 9, new Uint32Array(1), pgnos, commits)).toThrow(RangeError);
    expect(() => call(buf, 0, 1, fs, true, 7, 9, state, new Int32Array(6), commits)).toThrow(TypeError);
    expect(() => call('frames', 0, 1, fs, true, 7, 9, state, pgnos, commits)).toThrow(TypeError);
    expect(() => call(buf, 0, 1)).toThrow(TypeError);
  });
});

describe('the batched writes', () => {
  it.skipIf(!required && !nativePwriteRuns())('writes each run from its buffer at its position, reports errors as errno, and rejects runs outside the buffers', async () => {
    const write = nativePwriteRuns()!;
    const path = join(dir, 'runs.bin');
    const fh = await open(path, 'w+');
    try {
      const a = Buffer.from('abcdefghijklmnopqrstuvwxyz');
      const b = Buffer.from('0123456789');
      // Out of order, one past the end of the file (a hole before it), one overwriting another, and
      // runs from two buffers that follow one another in the file (one pwritev).
      const runs = new Float64Array([100, 0, 0, 3, 0, 0, 10, 5, 102, 0, 20, 2, 1 << 20, 0, 25, 1, 200, 1, 0, 4, 204, 0, 0, 2, 206, 1, 8, 2]);
      expect(await write(fh.fd, [a, b], runs)).toBe(19);
      const got = await readFile(path);
      expect(got.length).toBe((1 << 20) + 1);
      expect(got.subarray(0, 5).toString()).toBe('klmno');
      expect(got.subarray(100, 104).toString()).toBe('abuv');
      expect(got.subarray(200, 208).toString()).toBe('0123ab89');
      expect(got.subarray(5, 100).every((x) => x === 0)).toBe(true);
      expect(got[1 << 20]).toBe('z'.charCodeAt(0));
      // More runs that follow one another than one pwritev takes (1024 buffers).
      const many = Buffer.alloc(3000);
      for (let i = 0; i < many.length; i++) many[i] = i % 251;
      const manyRuns = new Float64Array(4 * 3000);
      for (let i = 0; i < 3000; i++) manyRuns.set([5000 + i, 0, 2999 - i, 1], 4 * i);
      expect(await write(fh.fd, [many], manyRuns)).toBe(3000);
      const back = (await readFile(path)).subarray(5000, 8000);
      expect(back.every((x, i) => x === (2999 - i) % 251)).toBe(true);
      const call = write as unknown as (...args: unknown[]) => Promise<number>;
      expect(() => call(fh.fd, [a], new Float64Array([0, 0, 20, 7]))).toThrow(RangeError);
      expect(() => call(fh.fd, [a], new Float64Array([0, 0, 0, 0]))).toThrow(RangeError);
      expect(() => call(fh.fd, [a], new Float64Array([-1, 0, 0, 1]))).toThrow(RangeError);
      expect(() => call(fh.fd, [a], new Float64Array([0.5, 0, 0, 1]))).toThrow(RangeError);
      expect(() => call(fh.fd, [a, b], new Float64Array([0, 1, 8, 3]))).toThrow(RangeError);
      expect(() => call(fh.fd, [a, b], new Float64Array([0, 2, 0, 1]))).toThrow(RangeError);
      for (const bad of [NaN, Infinity, 2 ** 63, -0.5]) {
        expect(() => call(fh.fd, [a], new Float64Array([bad, 0, 0, 1]))).toThrow(RangeError);
        expect(() => call(fh.fd, [a], new Float64Array([0, bad, 0, 1]))).toThrow(RangeError);
        expect(() => call(fh.fd, [a], new Float64Array([0, 0, bad, 1]))).toThrow(RangeError);
        expect(() => call(fh.fd, [a], new Float64Array([0, 0, 0, bad]))).toThrow(RangeError);
      }
      expect(() => call(fh.fd, [a], new Float64Array([0, 0, 0]))).toThrow(TypeError);
      expect(() => call(fh.fd, [a], [0, 0, 0, 1])).toThrow(TypeError);
      expect(() => call(-1, [a], new Float64Array([0, 0, 0, 1]))).toThrow(TypeError);
      expect(() => call(fh.fd, a, new Float64Array([0, 0, 0, 1]))).toThrow(TypeError);
      expect(() => call(fh.fd, [], new Float64Array([0, 0, 0, 1]))).toThrow(TypeError);
      expect(() => call(fh.fd, [a, 'text'], new Float64Array([0, 0, 0, 1]))).toThrow(TypeError);
    } finally {
      await fh.close();
    }
    // A descriptor open for reading only: the write fails with EBADF, as a negated errno.
    const ro = await open(path, 'r');
    try {
      expect(await write(ro.fd, [Buffer.from('x')], new Float64Array([0, 0, 0, 1]))).toBe(-constants.errno.EBADF);
    } finally {
      await ro.close();
    }
  });
});

describe('native/build.mjs', () => {
  async function pkgCopy(name: string): Promise<string> {
    const pkg = join(dir, name);
    await mkdir(join(pkg, 'native'), { recursive: true });
    for (const f of ['lz4-native.c', 'build.mjs']) await copyFile(join(nativeDir, f), join(pkg, 'native', f));
    return pkg;
  }
  const build = (pkg: string, env: Record<string, string>) =>
    run(process.execPath, [join(pkg, 'native', 'build.mjs')], { env: { ...process.env, LSTREAM_NATIVE_REQUIRED: '', ...env } }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );

  it('never fails an install unless required, and never leaves a stale binding behind', async () => {
    const pkg = await pkgCopy('pkg');
    const binding = join(pkg, 'build', 'lz4-native.node');
    const built = await build(pkg, {});
    expect(built.code).toBe(0);
    if (!existsSync(binding)) {
      // No compiler or headers here: it said why, and that is all it can do.
      expect(built.stderr).toMatch(/liblz4 binding not built/);
      expect(required).toBe(false);
      return;
    }
    // A failed rebuild (the source changed, the compiler fails) removes the old binding.
    const later = new Date(Date.now() + 5000);
    await utimes(join(pkg, 'native', 'lz4-native.c'), later, later);
    const failed = await build(pkg, { CC: 'false' });
    expect(failed.code).toBe(0);
    expect(failed.stderr).toMatch(/liblz4 binding not built \(false failed/);
    expect(existsSync(binding)).toBe(false);
    // Required: the same failure is an error.
    expect((await build(pkg, { CC: 'false', LSTREAM_NATIVE_REQUIRED: '1' })).code).toBe(1);
    // Built again, then switched off: the binding is removed, so the runtime uses lz4-napi.
    expect((await build(pkg, {})).code).toBe(0);
    expect(existsSync(binding)).toBe(true);
    const off = await build(pkg, { LSTREAM_NATIVE: 'off' });
    expect(off.code).toBe(0);
    expect(off.stderr).toMatch(/LSTREAM_NATIVE=off/);
    expect(existsSync(binding)).toBe(false);
  }, 60_000);
});
