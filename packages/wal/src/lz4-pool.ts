import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { compressSync, uncompressSync } from 'lz4-napi';
import { nativeLz4, type NativeLz4 } from './lz4-native.js';
import { allocAligned } from './direct-io.js';
import { SpareBuffers } from './spare-buffers.js';

/*
 * With the liblz4 binding (lz4-native.ts), every block of 256 KiB or more is compressed on libuv's
 * thread pool into memory this module owns, and smaller ones on the calling thread (see
 * `nativeCompress`); a decoder of independent blocks on several cores decompresses on the thread pool
 * one block ahead, otherwise on the calling thread (~1 ms per 4 MiB block; see poolUncompress). No
 * worker is started.
 *
 * Without it (no compiler when @ls/wal was built, no liblz4, or LSTREAM_LZ4=lz4-napi), lz4-napi:
 * - on the calling thread, for every stream not known to be large: WAL segments, however many. A
 *   worker takes ~50 ms of CPU to start and ~25 MB of memory, and shipping ~300 MiB of WAL in ~200
 *   segments was cheaper here (1.46-1.68 s of CPU per 100 MiB, 137-158 MB peak RSS in seven runs)
 *   than with the pool after the first 96 MiB (1.60-1.78 s, 163-167 MB). A 36 MiB segment compressed here kept the
 *   event loop's p99 delay at ~4 ms;
 * - for a stream its caller knows to be large (a snapshot, a bulk load's segment), in worker threads
 *   running lz4-napi's synchronous call, and only there: the calling thread reads, hashes and writes,
 *   and its event loop is never held by a block. A 1 GiB first snapshot took 2.28-2.75 s this way
 *   and peaked at 151-153 MB, against 1.80-2.25 s and 165-207 MB with the calling thread compressing
 *   too (`lz4 -1` took 2.03-2.84 s on the same file). Each worker copies its result into a
 *   transferable ArrayBuffer, which V8 accounts for, and releases lz4-napi's buffer on its own event
 *   loop between messages.
 * lz4-napi's async calls (libuv's threads) are not used: the native buffers they return are freed only
 * when the calling thread collects garbage, in the arenas of the threads that allocated them, which
 * keep the memory: twenty 64 MiB streams in a row left 447 MiB resident (236 MiB this way), and a
 * restore decoding segments that way peaked at 722 MiB.
 * Decompression stays on the calling thread, see poolUncompress.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { compressSync } = require(workerData.lz4);
// lz4-napi's result buffers are native memory V8 does not count; they are released by finalizers
// that run only after this isolate collects garbage and then gets an event-loop turn. So: collect
// every few MiB, and run one job per turn (a MessagePort delivers queued messages in one go).
let collect = globalThis.gc;
if (!collect) {
  require('node:v8').setFlagsFromString('--expose-gc');
  collect = require('node:vm').runInNewContext('gc');
}
let produced = 0;
const queue = [];
let scheduled = false;
function pump() {
  scheduled = false;
  const job = queue.shift();
  if (!job) return;
  run(job);
  if (produced > 8 * 1024 * 1024) {
    produced = 0;
    collect();
  }
  if (queue.length > 0) {
    scheduled = true;
    setImmediate(pump);
  }
}
function run({ id, input, length }) {
  try {
    const buf = Buffer.from(input, 0, length);
    const out = compressSync(buf);
    produced += out.length;
    if (out.length - 4 >= length) {
      // Not smaller: the frame stores the block as it is, and this copy of it goes back as its bytes.
      parentPort.postMessage({ id, ok: true, raw: true, input }, [input]);
      return;
    }
    const ab = new ArrayBuffer(out.length);
    new Uint8Array(ab).set(out);
    parentPort.postMessage({ id, ok: true, output: ab, input }, [ab, input]);
  } catch (err) {
    parentPort.postMessage({ id, ok: false, message: String(err && err.message || err), input }, [input]);
  }
}
parentPort.postMessage({ ready: true });
parentPort.on('message', (job) => {
  queue.push(job);
  if (!scheduled) {
    scheduled = true;
    setImmediate(pump);
  }
});
`;

/**
 * One compressed block: lz4-napi's output (the u32 LE size prefix, then the data), or, when that is not
 * smaller than the input, a private copy of the input to store as an uncompressed block. The copy is
 * taken before the caller's memory can change (the caller may refill it once the call returns).
 */
export type CompressedBlock = { compressed: Buffer; raw?: undefined } | { raw: Buffer; compressed?: undefined };

interface Job {
  resolve: (b: CompressedBlock) => void;
  reject: (e: Error) => void;
  length: number;
}

interface PoolWorker {
  worker: Worker;
  busy: number;
  /** lz4-napi is loaded in the worker (jobs sent before that wait in its queue). */
  ready: boolean;
}

/** Worker threads compressing LZ4 blocks; created on first use, idle workers never hold the process open. */
class Lz4Pool {
  readonly #workers: PoolWorker[] = [];
  readonly #jobs = new Map<number, Job & { w: PoolWorker }>();
  #nextId = 1;
  /** Input buffers handed back by workers, reused for the next blocks. */
  readonly #free: ArrayBuffer[] = [];
  readonly size: number;
  /** Why a worker failed before it was up, if one did: the pool is then not used. */
  #unstartable: Error | undefined;

  constructor(size: number) {
    this.size = size;
  }

  #spawn(): PoolWorker {
    const require = createRequire(import.meta.url);
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { lz4: require.resolve('lz4-napi') },
    });
    const w: PoolWorker = { worker, busy: 0, ready: false };
    worker.unref();
    worker.on('message', (m: { id: number; ok: boolean; output?: ArrayBuffer; raw?: boolean; message?: string; input: ArrayBuffer; ready?: boolean }) => {
      if (m.ready) {
        w.ready = true;
        // Unref'd again once up: a pool started and never used was once seen keeping the process
        // alive after its work was done (while lz4-napi's async calls were also in use).
        if (w.busy === 0) worker.unref();
        return;
      }
      // An input that comes back as a raw block's bytes belongs to that block from now on.
      if (!m.raw) this.#recycle(m.input);
      const job = this.#jobs.get(m.id);
      if (!job) return;
      this.#jobs.delete(m.id);
      if (--w.busy === 0) worker.unref();
      if (!m.ok) job.reject(new Error(m.message));
      else if (m.raw) job.resolve({ raw: Buffer.from(m.input, 0, job.length) });
      else job.resolve({ compressed: Buffer.from(m.output!) });
    });
    const fail = (err: Error) => {
      for (const [id, job] of this.#jobs) {
        if (job.w !== w) continue;
        this.#jobs.delete(id);
        job.reject(err);
      }
      const i = this.#workers.indexOf(w);
      if (i >= 0) this.#workers.splice(i, 1);
      // A worker that died before it was up would die again: from now on this thread compresses.
      if (!w.ready) this.#unstartable ??= err;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`LZ4 worker exited with code ${code}`)));
    this.#workers.push(w);
    return w;
  }

  #take(length: number): ArrayBuffer {
    const i = this.#free.findIndex((b) => b.byteLength >= length);
    if (i >= 0) return this.#free.splice(i, 1)[0]!;
    // Round up so one buffer fits every block of the common sizes.
    return new ArrayBuffer(Math.max(length, 4 * 1024 * 1024 + 64));
  }

  #recycle(ab: ArrayBuffer): void {
    if (this.#free.length < this.size * WORKER_QUEUE + 1) this.#free.push(ab);
  }

  /** Starts the workers now (they take ~50 ms to become ready), for a caller about to compress a lot. */
  warm(): void {
    while (this.#workers.length < this.size) this.#spawn();
  }

  /**
   * Compresses one block: here unless `large` is set; then in the least busy worker (one still
   * starting takes it when it is up). Callers bound what is queued (see compressDepth).
   */
  compress(input: Uint8Array, large: boolean): Promise<CompressedBlock> {
    if (!large || this.size === 0 || this.#unstartable) return compressHereNow(input);
    this.warm();
    let w = this.#workers[0]!;
    for (const x of this.#workers) if (x.busy < w.busy) w = x;
    // The input is copied into a buffer the worker takes over (and hands back for reuse), so callers
    // may reuse theirs at once and no garbage is made per block.
    const ab = this.#take(input.byteLength);
    new Uint8Array(ab, 0, input.byteLength).set(input);
    const id = this.#nextId++;
    if (w.busy++ === 0) w.worker.ref();
    const target = w;
    return new Promise<CompressedBlock>((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject, w: target, length: input.byteLength });
      target.worker.postMessage({ id, input: ab, length: input.byteLength }, [ab]);
    });
  }
}

/** Blocks queued at one worker at most: two, so it starts the next as soon as it finishes one. */
const WORKER_QUEUE = 2;

/**
 * Compresses one block on the calling thread, right away, before returning: callers reuse their
 * input buffer as soon as the call returns, so neither the work nor the raw copy may be deferred.
 */
function compressHereNow(input: Uint8Array): Promise<CompressedBlock> {
  try {
    const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    const out = compressSync(buf);
    if (out.length - 4 >= buf.length) return Promise.resolve({ raw: Buffer.from(buf) });
    // compressSync's result lives outside V8's accounting until a collection finds it; a copy is
    // accounted, so allocation pressure keeps triggering the collections that free the originals.
    return Promise.resolve({ compressed: Buffer.from(out) });
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

/** Decompresses one size-prefixed block on the calling thread, right away. */
function uncompressHereNow(input: Uint8Array, dict?: Uint8Array): Promise<Buffer> {
  try {
    const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
    return Promise.resolve(uncompressSync(buf, dict ? Buffer.from(dict) : undefined));
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

let pool: Lz4Pool | undefined;

let threads: number | undefined;

/**
 * Threads used for LZ4 work: the machine's parallelism, at most 4 (LSTREAM_LZ4_THREADS overrides).
 * Read once: a decoder asks for every frame, and reading process.env is a call into C++ each time
 * (~6 ms over a restore of ~250 segments).
 */
export function lz4Threads(): number {
  if (threads === undefined) {
    const env = Number(process.env.LSTREAM_LZ4_THREADS);
    threads = Number.isInteger(env) && env > 0 ? env : Math.min(4, Math.max(1, availableParallelism()));
  }
  return threads;
}

/** Worker threads next to the calling thread, which reads and writes: one fewer than lz4Threads(). */
function lz4Pool(): Lz4Pool {
  pool ??= new Lz4Pool(lz4Threads() - 1);
  return pool;
}

/** Streams longer than this, when their length is known, use the worker pool from their first block. */
export const LARGE_STREAM_BYTES = 64 * 1024 * 1024;

/**
 * Compresses one block with lz4-napi's block format (u32 LE size prefix): on the calling thread, or
 * with `large` (a block of a stream known to be large) in the worker pool.
 */
export function poolCompress(block: Uint8Array, large = false): Promise<CompressedBlock> {
  const lib = nativeLz4();
  return lib ? nativeCompress(lib, block) : lz4Pool().compress(block, large);
}

/** Starts the compression workers ahead of a large stream (no-op on a single core). */
export function warmCompressPool(): void {
  if (!nativeLz4()) lz4Pool().warm();
}

/**
 * Blocks a compressor may have in flight: with liblz4, one per LZ4 thread (at least two, so this
 * thread reads and hashes the next block while one compresses; a third on two cores added ~15 MB
 * of peak memory to a 1 GiB snapshot and no speed); with lz4-napi's workers, every worker's queue.
 */
export function compressDepth(): number {
  if (nativeLz4()) return Math.max(2, lz4Threads());
  return Math.max(1, lz4Pool().size * WORKER_QUEUE);
}

/**
 * Decompresses one size-prefixed block, with `dict` for linked blocks. With lz4-napi always on the
 * calling thread: decompression is fast (~2 ms per 4 MiB block), and measured restores were as fast
 * this way as with workers while using 80 MiB less memory. With liblz4, on the calling thread too
 * (~1 ms per 4 MiB block), or with `offThread` on libuv's thread pool, so a decoder can hash one
 * block while the next decompresses (see uncompressDepth); `prefixed` must then stay untouched
 * until the promise settles.
 */
export function poolUncompress(prefixed: Uint8Array, dict?: Uint8Array, offThread = false, keepSmall = false): Promise<Buffer> {
  const lib = nativeLz4();
  if (!lib) return uncompressHereNow(prefixed, dict);
  return offThread && !dict ? nativeUncompressAsync(lib, prefixed, keepSmall) : nativeUncompress(lib, prefixed, dict, keepSmall);
}

/**
 * Blocks a decoder of independent blocks should have decompressing at once: two with liblz4 on more
 * than one core (one on the thread pool while the calling thread hashes the one before), else one.
 */
export function uncompressDepth(): number {
  return nativeLz4() && lz4Threads() > 1 ? 2 : 1;
}

/** Blocks smaller than this are compressed on the calling thread (liblz4 takes ~0.4 ms for 256 KiB). */
const NATIVE_ASYNC_MIN = 256 * 1024;
/**
 * Spare input and output buffers of the native compressor, reused block after block; new ones are
 * rounded up so one buffer fits every block of the common sizes (4 MiB and below).
 */
const nativeIn = new SpareBuffers(4, 4 * 1024 * 1024 + 64 * 1024);
const nativeOut = new SpareBuffers(4, 4 * 1024 * 1024 + 64 * 1024);

/**
 * Compresses one block with liblz4. Returns the same shape as lz4-napi's path (a u32 LE slot, then
 * the compressed bytes), so the frame writer overwrites the slot with the block header. Blocks of
 * NATIVE_ASYNC_MIN or more are first copied into a spare buffer this module owns (the caller may
 * refill its own as soon as this returns) and compressed on libuv's thread pool; the result is
 * copied out to a buffer of its exact size, so the spares go straight back to work.
 */
async function nativeCompress(lib: NativeLz4, input: Uint8Array): Promise<CompressedBlock> {
  const length = input.byteLength;
  const bound = lib.compressBound(length) + 4;
  const out = nativeOut.take(bound);
  let owned: Buffer | undefined;
  try {
    let n: number;
    if (length < NATIVE_ASYNC_MIN) {
      n = lib.compress(input, out.subarray(4, bound));
      if (n === 0 || n >= length) return { raw: Buffer.from(input) };
    } else {
      owned = nativeIn.take(length);
      owned.set(input);
      n = await lib.compressAsync(owned.subarray(0, length), out.subarray(4, bound));
      if (n === 0 || n >= length) return { raw: Buffer.from(owned.subarray(0, length)) };
    }
    const compressed = Buffer.allocUnsafe(n + 4);
    out.copy(compressed, 0, 0, n + 4);
    return { compressed };
  } finally {
    nativeOut.give(out);
    nativeIn.give(owned);
  }
}

/**
 * Blocks handed to callers, as the very views returned, which they may give back with
 * releaseDecodedBlock. Keyed on the view, not its memory: once memory is handed out again as another
 * block, a stale second release of the old view must not put it back in use.
 */
const handedOut = new WeakSet<Uint8Array>();
/**
 * Output buffers free for the next decompression: given back by callers, or not handed out at all.
 * Their memory is aligned for direct I/O (see direct-io.ts), so a restore can write decoded snapshot
 * blocks to disk straight from them.
 */
const decodedSpares = new SpareBuffers(4, 0, allocAligned);
/**
 * Buffers that decoded blocks smaller than half their output buffer are copied into (the tail of a
 * frame, a small WAL segment), sized in steps of SMALL_BLOCK_STEP and reused once given back as the
 * large ones are: a restore of ~200 WAL segments of ~1.5 MiB each otherwise copied every one into
 * fresh memory, paying its page faults and a garbage collector that ran after 300 MiB of them.
 */
const smallSpares = new SpareBuffers(16);
const smallMemory = new WeakSet<ArrayBufferLike>();
const SMALL_BLOCK_STEP = 256 * 1024;

/**
 * Gives a block that decodeLz4Frame yielded back for reuse, once nothing reads it any more: the next
 * block decompressed may land in its memory. Optional: a block not given back is collected as any
 * buffer. Restore gives back each snapshot block once it is written and each WAL block once it is
 * applied, which spares the page faults of fresh memory for every 4 MiB (~1 GiB of them for a 1 GiB
 * snapshot) and keeps peak memory down. Anything else (a block of another origin, one given back
 * twice, a part of a block) is ignored.
 */
export function releaseDecodedBlock(block: Uint8Array): void {
  if (!handedOut.has(block)) return;
  handedOut.delete(block);
  // A block is the start of its buffer, which runs from there to the end of its memory (aligned
  // buffers start a little way in).
  const whole = Buffer.from(block.buffer as ArrayBuffer, block.byteOffset, block.buffer.byteLength - block.byteOffset);
  (smallMemory.has(block.buffer) ? smallSpares : decodedSpares).give(whole);
}

/**
 * What a decompression into `out` returns: a block that fills at least half of `out` (or any block,
 * with `keepSmall`: the caller gives every block back) is returned in it, the buffer being the
 * caller's from then on; a smaller one (the tail of a frame, a small WAL segment) is copied into a
 * small buffer (see smallSpares), and `out` kept for the next block.
 */
function settleDecoded(out: Buffer, n: number, keepSmall: boolean): Buffer {
  if (n < 0) {
    decodedSpares.give(out);
    throw new Error(`liblz4 found the block malformed at byte ${-n - 1}`);
  }
  if (n * 2 >= out.length || (keepSmall && n > 0)) {
    const block = out.subarray(0, n);
    handedOut.add(block);
    return block;
  }
  if (n === 0) {
    decodedSpares.give(out);
    return Buffer.alloc(0);
  }
  const small = smallSpares.take(Math.ceil(n / SMALL_BLOCK_STEP) * SMALL_BLOCK_STEP);
  smallMemory.add(small.buffer);
  out.copy(small, 0, 0, n);
  decodedSpares.give(out);
  const block = small.subarray(0, n);
  handedOut.add(block);
  return block;
}

function prefixedBlock(prefixed: Uint8Array): { block: Buffer; capacity: number } {
  const buf = Buffer.from(prefixed.buffer, prefixed.byteOffset, prefixed.byteLength);
  if (buf.length < 4) throw new Error('LZ4 block shorter than its size prefix');
  return { block: buf.subarray(4), capacity: buf.readUInt32LE(0) };
}

/** Decompresses one size-prefixed block with liblz4 on the calling thread. */
function nativeUncompress(lib: NativeLz4, prefixed: Uint8Array, dict: Uint8Array | undefined, keepSmall: boolean): Promise<Buffer> {
  try {
    const { block, capacity } = prefixedBlock(prefixed);
    const out = decodedSpares.take(capacity);
    return Promise.resolve(settleDecoded(out, lib.decompress(block, out.subarray(0, capacity), dict), keepSmall));
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

/** Decompresses one size-prefixed block with liblz4 on libuv's thread pool. */
async function nativeUncompressAsync(lib: NativeLz4, prefixed: Uint8Array, keepSmall: boolean): Promise<Buffer> {
  const { block, capacity } = prefixedBlock(prefixed);
  const out = decodedSpares.take(capacity);
  return settleDecoded(out, await lib.decompressAsync(block, out.subarray(0, capacity)), keepSmall);
}
