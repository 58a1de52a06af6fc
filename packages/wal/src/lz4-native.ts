import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The optional binding to the system's liblz4 (native/lz4-native.c, built into build/ by
 * `native/build.mjs` when @ls/wal is built or installed). liblz4 is the library the `lz4` CLI runs
 * on: on 64 MiB of SQLite pages it compressed 2-2.4× and decompressed 2.5-4× as fast as lz4-napi
 * (lz4_flex), writes the same bytes as `lz4 -1`, and works on caller-provided memory, so it can run
 * on libuv's thread pool without leaving native buffers behind.
 */
export interface NativeLz4 {
  /** liblz4's version number (10904 for 1.9.4). */
  readonly version: number;
  /** Compresses `src` into `dst` as one LZ4 block; returns its size, or 0 when it does not fit. */
  compress(src: Uint8Array, dst: Uint8Array): number;
  /** As `compress`, on libuv's thread pool; `src` and `dst` must stay untouched until it settles. */
  compressAsync(src: Uint8Array, dst: Uint8Array): Promise<number>;
  /** Decompresses one block into `dst` (with the previous 64 KiB as `dict` for linked blocks); negative when corrupt. */
  decompress(src: Uint8Array, dst: Uint8Array, dict?: Uint8Array): number;
  /** As `decompress`, on libuv's thread pool. */
  decompressAsync(src: Uint8Array, dst: Uint8Array, dict?: Uint8Array): Promise<number>;
  /** The largest size `compress` can produce for `n` bytes. */
  compressBound(n: number): number;
}

/** Which LZ4 implementation @ls/wal uses, and why not liblz4 when it does not. */
export interface Lz4Backend {
  name: 'liblz4' | 'lz4-napi';
  /** liblz4's version, e.g. "1.9.4", when it is the backend. */
  version?: string;
  /** Why liblz4 is not used, when it is not. */
  reason?: string;
}

/**
 * The binding's check of a run of WAL frames (see `WalChain.verifyRun`), which needs no library:
 * `chain` holds the running checksum pair and is advanced; returns how many frames passed.
 */
export type NativeWalVerifyRun = (
  buf: Uint8Array,
  start: number,
  max: number,
  frameSize: number,
  bigEndian: boolean,
  salt1: number,
  salt2: number,
  chain: Uint32Array,
  pgnos: Uint32Array,
  commits: Uint32Array,
) => number;

/**
 * The binding's positional writes of many runs of `bufs`' memory, in place ((file position, index in
 * bufs, offset, length) quadruples in `runs`; runs that follow one another in the file go out as one
 * pwritev), on libuv's thread pool; resolves to the bytes written, or to a negated errno.
 */
export type NativePwriteRuns = (fd: number, bufs: Uint8Array[], runs: Float64Array) => Promise<number>;

/** The binding's distance, in bytes, from the start of `buf`'s memory to the next multiple of `align`. */
export type NativeAlignGap = (buf: Uint8Array, align: number) => number;

/** The binding's request for transparent huge pages over `buf`'s whole 2 MiB-aligned stretches; returns the bytes advised. */
export type NativeAdviseHugePages = (buf: Uint8Array) => number;

interface Loaded {
  lib?: NativeLz4;
  walVerifyRun?: NativeWalVerifyRun;
  pwriteRuns?: NativePwriteRuns;
  alignGap?: NativeAlignGap;
  adviseHugePages?: NativeAdviseHugePages;
  reason?: string;
}

let loaded: Loaded | undefined;

function load(): Loaded {
  if (loaded) return loaded;
  let m:
    | (Partial<NativeLz4> & {
        loadError?: string;
        walVerifyRun?: NativeWalVerifyRun;
        pwriteRunsAsync?: NativePwriteRuns;
        alignGap?: NativeAlignGap;
        adviseHugePages?: NativeAdviseHugePages;
      })
    | undefined;
  let reason: string | undefined;
  // build/ sits next to src/ and dist/, so one relative path serves tests and the built package.
  const path = fileURLToPath(new URL('../build/lz4-native.node', import.meta.url));
  if (!existsSync(path)) {
    reason = 'binding not built';
  } else {
    try {
      // process.dlopen, not require: in an ES module process the CommonJS loader would first have
      // to load itself (~10 ms here in a fresh process).
      const holder = { exports: {} as NonNullable<typeof m> };
      process.dlopen(holder, path);
      m = holder.exports;
    } catch (err) {
      reason = `binding failed to load: ${(err as Error).message}`;
    }
  }
  // The WAL helpers need no library; LSTREAM_WAL_NATIVE=off leaves them out (JavaScript checks, and
  // synchronous writes from the calling thread).
  loaded = process.env.LSTREAM_WAL_NATIVE === 'off' ? {} : { walVerifyRun: m?.walVerifyRun, pwriteRuns: m?.pwriteRunsAsync, alignGap: m?.alignGap, adviseHugePages: m?.adviseHugePages };
  if (process.env.LSTREAM_LZ4 === 'lz4-napi') loaded.reason = 'LSTREAM_LZ4=lz4-napi';
  else if (!m) loaded.reason = reason;
  else if (m.loadError || !m.compress) loaded.reason = m.loadError ?? 'binding incomplete';
  else loaded.lib = m as NativeLz4;
  return loaded;
}

/** The binding's WAL frame check, or undefined when it is not built or LSTREAM_WAL_NATIVE=off. */
export function nativeWalVerifyRun(): NativeWalVerifyRun | undefined {
  return load().walVerifyRun;
}

/** The binding's batched positional writes, or undefined when it is not built or LSTREAM_WAL_NATIVE=off. */
export function nativePwriteRuns(): NativePwriteRuns | undefined {
  return load().pwriteRuns;
}

/** The binding's alignment probe, or undefined when it is not built or LSTREAM_WAL_NATIVE=off. */
export function nativeAlignGap(): NativeAlignGap | undefined {
  return load().alignGap;
}

/** The binding's huge-page advice, or undefined when it is not built or LSTREAM_WAL_NATIVE=off. */
export function nativeAdviseHugePages(): NativeAdviseHugePages | undefined {
  return load().adviseHugePages;
}

/** The liblz4 binding, or undefined when it is not built, liblz4 is missing, or LSTREAM_LZ4=lz4-napi. */
export function nativeLz4(): NativeLz4 | undefined {
  return load().lib;
}

/** The LZ4 implementation in use (LSTREAM_LZ4=lz4-napi forces lz4-napi). */
export function lz4Backend(): Lz4Backend {
  const { lib, reason } = load();
  if (!lib) return { name: 'lz4-napi', reason: reason! };
  const v = lib.version;
  return { name: 'liblz4', version: `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}` };
}

// Loaded with the module, as a native addon is at import: a restore or apply timed from its start
// does not pay for it, and a broken binding shows from the start.
load();
