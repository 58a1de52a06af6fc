import { createRequire } from 'node:module';

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

let loaded: { lib?: NativeLz4; reason?: string } | undefined;

function load(): { lib?: NativeLz4; reason?: string } {
  if (loaded) return loaded;
  if (process.env.LSTREAM_LZ4 === 'lz4-napi') return (loaded = { reason: 'LSTREAM_LZ4=lz4-napi' });
  try {
    // build/ sits next to src/ and dist/, so one relative path serves tests and the built package.
    const m = createRequire(import.meta.url)('../build/lz4-native.node') as Partial<NativeLz4> & { loadError?: string };
    loaded = m.loadError || !m.compress ? { reason: m.loadError ?? 'binding incomplete' } : { lib: m as NativeLz4 };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    loaded = { reason: code === 'MODULE_NOT_FOUND' ? 'binding not built' : `binding failed to load: ${(err as Error).message}` };
  }
  return loaded;
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
