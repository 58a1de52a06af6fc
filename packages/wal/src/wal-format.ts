import { WalFormatError } from './errors.js';
import { nativeWalVerifyRun } from './lz4-native.js';

/** Size in bytes of the SQLite WAL file header. */
export const WAL_HEADER_SIZE = 32;
/** Size in bytes of the header in front of every WAL frame's page image. */
export const WAL_FRAME_HEADER_SIZE = 24;
/** WAL magic whose checksums read 32-bit words as little-endian. */
export const WAL_MAGIC_LE = 0x377f0682;
/** WAL magic whose checksums read 32-bit words as big-endian. */
export const WAL_MAGIC_BE = 0x377f0683;
/** The only WAL format version SQLite has ever written. */
export const WAL_FORMAT_VERSION = 3007000;
/** The largest page size SQLite supports, in bytes. */
export const MAX_PAGE_SIZE = 65_536;

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** The most bytes the binding's frame check takes in one call (its lengths are C ints). */
const NATIVE_MAX_BYTES = 0x7fffffff;

/** The 32-byte header at the start of a SQLite `-wal` file. */
export interface WalHeader {
  magic: number;
  /** True when checksums read 32-bit words big-endian (magic 0x377f0683). */
  bigEndianChecksum: boolean;
  version: number;
  pageSize: number;
  checkpointSeq: number;
  salt1: number;
  salt2: number;
  checksum1: number;
  checksum2: number;
}

/** The 24-byte header of one WAL frame. */
export interface WalFrameHeader {
  pgno: number;
  /** Database size in pages after this frame's transaction; non-zero only on a commit frame. */
  commitSize: number;
  salt1: number;
  salt2: number;
  checksum1: number;
  checksum2: number;
}

/** Returns true when `n` is a page size SQLite can use (a power of two from 512 to 65536). */
export function isValidPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= 512 && n <= MAX_PAGE_SIZE && (n & (n - 1)) === 0;
}

/** Returns the size in bytes of one frame (header plus page) for `pageSize`. */
export function walFrameSize(pageSize: number): number {
  return WAL_FRAME_HEADER_SIZE + pageSize;
}

/** Returns the size in bytes of a WAL holding `frames` frames of `pageSize`. */
export function walSizeForFrames(pageSize: number, frames: number): number {
  return WAL_HEADER_SIZE + frames * walFrameSize(pageSize);
}

/** Rounds `offset` down to the nearest frame boundary; offsets inside the header give 0. */
export function frameAlign(offset: number, pageSize: number): number {
  if (offset < WAL_HEADER_SIZE) return 0;
  const frameSize = walFrameSize(pageSize);
  return WAL_HEADER_SIZE + Math.floor((offset - WAL_HEADER_SIZE) / frameSize) * frameSize;
}

/** The running pair of SQLite's WAL checksum. */
interface ChecksumPair {
  a: number;
  b: number;
}

/**
 * True when `data`'s words can be read as host-order words: the WAL's checksum byte order is the
 * host's and `data` is 4-byte aligned. V8 optimises that best.
 */
function readsNativeWords(bigEndian: boolean, data: Uint8Array): boolean {
  // Word indexes into the whole ArrayBuffer are computed with >>> 2: below 4 GiB only.
  return bigEndian !== HOST_LITTLE_ENDIAN && data.byteOffset % 4 === 0 && data.buffer.byteLength < 2 ** 32;
}

/**
 * Adds words [from, to) of `w` (an even count, in host byte order) to the checksum pair `sum`.
 * The words are read as signed 32-bit integers and summed with `| 0`: V8 then keeps the whole
 * loop in 32-bit integer adds (through a Uint32Array and `>>> 0` it ran 2.2× slower). The pair is
 * kept as int32 here; callers compare it as uint32.
 */
function addNativeWords(w: Int32Array, from: number, to: number, sum: ChecksumPair): void {
  let a = sum.a | 0;
  let b = sum.b | 0;
  for (let i = from; i < to; i += 2) {
    a = (a + w[i]! + b) | 0;
    b = (b + w[i + 1]! + a) | 0;
  }
  sum.a = a;
  sum.b = b;
}

/**
 * Computes SQLite's WAL checksum of `data` (a multiple of 8 bytes), continuing from (`s0`, `s1`).
 * Words are read in the byte order the WAL magic names. Returns the new pair.
 */
export function walChecksum(
  bigEndian: boolean,
  data: Uint8Array,
  s0: number,
  s1: number,
): [number, number] {
  const n = data.byteLength;
  if (n % 8 !== 0) throw new RangeError(`WAL checksum input must be a multiple of 8 bytes, got ${n}`);
  if (readsNativeWords(bigEndian, data)) {
    const sum = { a: s0, b: s1 };
    addNativeWords(new Int32Array(data.buffer, data.byteOffset, n >>> 2), 0, n >>> 2, sum);
    return [sum.a >>> 0, sum.b >>> 0];
  }
  let a = s0 >>> 0;
  let b = s1 >>> 0;
  const view = new DataView(data.buffer, data.byteOffset, n);
  const le = !bigEndian;
  for (let i = 0; i < n; i += 8) {
    a = (a + view.getUint32(i, le) + b) >>> 0;
    b = (b + view.getUint32(i + 4, le) + a) >>> 0;
  }
  return [a, b];
}

/**
 * Parses and checks the 32-byte WAL header at the start of `buf`.
 * Throws WalFormatError when the magic, version, page size or header checksum is wrong.
 */
export function parseWalHeader(buf: Uint8Array): WalHeader {
  if (buf.byteLength < WAL_HEADER_SIZE) {
    throw new WalFormatError(`WAL header needs ${WAL_HEADER_SIZE} bytes, got ${buf.byteLength}`, { offset: 0 });
  }
  const v = new DataView(buf.buffer, buf.byteOffset, WAL_HEADER_SIZE);
  const magic = v.getUint32(0, false);
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) {
    throw new WalFormatError(`not a SQLite WAL: bad magic 0x${magic.toString(16).padStart(8, '0')}`, { offset: 0 });
  }
  const header: WalHeader = {
    magic,
    bigEndianChecksum: magic === WAL_MAGIC_BE,
    version: v.getUint32(4, false),
    pageSize: v.getUint32(8, false),
    checkpointSeq: v.getUint32(12, false),
    salt1: v.getUint32(16, false),
    salt2: v.getUint32(20, false),
    checksum1: v.getUint32(24, false),
    checksum2: v.getUint32(28, false),
  };
  if (header.version !== WAL_FORMAT_VERSION) {
    throw new WalFormatError(`unsupported WAL format version ${header.version}`, { offset: 4 });
  }
  if (!isValidPageSize(header.pageSize)) {
    throw new WalFormatError(`invalid WAL page size ${header.pageSize}`, { offset: 8 });
  }
  const [c1, c2] = walChecksum(header.bigEndianChecksum, buf.subarray(0, 24), 0, 0);
  if (c1 !== header.checksum1 || c2 !== header.checksum2) {
    throw new WalFormatError('WAL header checksum mismatch', { offset: 24 });
  }
  return header;
}

/** Serialises `header` into 32 bytes, computing its checksum. */
export function encodeWalHeader(header: Omit<WalHeader, 'checksum1' | 'checksum2' | 'magic' | 'version'> & { version?: number }): Uint8Array {
  const buf = new Uint8Array(WAL_HEADER_SIZE);
  const v = new DataView(buf.buffer);
  v.setUint32(0, header.bigEndianChecksum ? WAL_MAGIC_BE : WAL_MAGIC_LE, false);
  v.setUint32(4, header.version ?? WAL_FORMAT_VERSION, false);
  v.setUint32(8, header.pageSize, false);
  v.setUint32(12, header.checkpointSeq, false);
  v.setUint32(16, header.salt1, false);
  v.setUint32(20, header.salt2, false);
  const [c1, c2] = walChecksum(header.bigEndianChecksum, buf.subarray(0, 24), 0, 0);
  v.setUint32(24, c1, false);
  v.setUint32(28, c2, false);
  return buf;
}

/** Parses the 24-byte frame header at the start of `buf`. Does not verify anything. */
export function parseWalFrameHeader(buf: Uint8Array): WalFrameHeader {
  if (buf.byteLength < WAL_FRAME_HEADER_SIZE) {
    throw new WalFormatError(`WAL frame header needs ${WAL_FRAME_HEADER_SIZE} bytes, got ${buf.byteLength}`);
  }
  // Byte arithmetic rather than a DataView: this runs once per frame, and a view per call is garbage.
  return {
    pgno: be32(buf, 0),
    commitSize: be32(buf, 4),
    salt1: be32(buf, 8),
    salt2: be32(buf, 12),
    checksum1: be32(buf, 16),
    checksum2: be32(buf, 20),
  };
}

function be32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/**
 * Serialises one frame (header and page) that continues the checksum chain at (`s0`, `s1`).
 * Returns the frame bytes and the new chain value. Used to build WALs in tests and tools.
 */
export function encodeWalFrame(
  header: Pick<WalHeader, 'bigEndianChecksum' | 'salt1' | 'salt2' | 'pageSize'>,
  pgno: number,
  commitSize: number,
  page: Uint8Array,
  chain: readonly [number, number],
): { frame: Uint8Array; chain: [number, number] } {
  if (page.byteLength !== header.pageSize) {
    throw new RangeError(`page is ${page.byteLength} bytes, WAL page size is ${header.pageSize}`);
  }
  const frame = new Uint8Array(walFrameSize(header.pageSize));
  const v = new DataView(frame.buffer);
  v.setUint32(0, pgno, false);
  v.setUint32(4, commitSize, false);
  v.setUint32(8, header.salt1, false);
  v.setUint32(12, header.salt2, false);
  frame.set(page, WAL_FRAME_HEADER_SIZE);
  let next = walChecksum(header.bigEndianChecksum, frame.subarray(0, 8), chain[0], chain[1]);
  next = walChecksum(header.bigEndianChecksum, page, next[0], next[1]);
  v.setUint32(16, next[0], false);
  v.setUint32(20, next[1], false);
  return { frame, chain: next };
}

/** Why a frame reader stopped: the input ended cleanly, or the next frame does not continue the chain. */
export type WalStopReason = 'end' | 'partial-frame' | 'salt-mismatch' | 'checksum-mismatch' | 'invalid-frame';

/**
 * Verifies frames against a WAL's salts and cumulative checksum chain, one at a time.
 * `verify` advances the chain only for a frame that continues it.
 */
export class WalChain {
  #s0: number;
  #s1: number;

  /** Starts at the header's checksum, or at `checksum` when resuming after a known frame. */
  constructor(
    readonly header: WalHeader,
    checksum: readonly [number, number] = [header.checksum1, header.checksum2],
  ) {
    this.#s0 = checksum[0];
    this.#s1 = checksum[1];
  }

  /** Returns the checksum of the last verified frame (or the starting value). */
  get checksum(): [number, number] {
    return [this.#s0, this.#s1];
  }

  /**
   * Checks one whole frame (24-byte header plus page). Returns 'ok' and advances the chain when the
   * frame's salts match the header and its checksum continues the chain; otherwise returns why not.
   */
  verify(
    frame: Uint8Array,
    h: WalFrameHeader = parseWalFrameHeader(frame),
  ): 'ok' | 'salt-mismatch' | 'checksum-mismatch' | 'invalid-frame' {
    if (h.salt1 !== this.header.salt1 || h.salt2 !== this.header.salt2) return 'salt-mismatch';
    if (h.pgno === 0) return 'invalid-frame';
    const be = this.header.bigEndianChecksum;
    if (readsNativeWords(be, frame) && frame.byteLength % 8 === 0) {
      this.#sumFrame(this.#wordsFor(frame.buffer), frame.byteOffset >>> 2, frame.byteLength >>> 2);
      const a = this.#sum.a >>> 0;
      const b = this.#sum.b >>> 0;
      if (a !== h.checksum1 || b !== h.checksum2) return 'checksum-mismatch';
      this.#s0 = a;
      this.#s1 = b;
      return 'ok';
    }
    let c = walChecksum(be, frame.subarray(0, 8), this.#s0, this.#s1);
    c = walChecksum(be, frame.subarray(WAL_FRAME_HEADER_SIZE), c[0], c[1]);
    if (c[0] !== h.checksum1 || c[1] !== h.checksum2) return 'checksum-mismatch';
    this.#s0 = c[0];
    this.#s1 = c[1];
    return 'ok';
  }

  /**
   * Verifies up to `max` consecutive whole frames of `frameSize` bytes in `buf` from byte `start`,
   * writing each frame's page number and commit size into `pgnos` and `commits`, and advances the
   * chain over them. Stops before the first frame that does not continue the chain and returns the
   * number of frames that do (check that frame with `verify` to learn why). One pass over a chunk,
   * with no view or object per frame: this is how restore reads frames.
   */
  verifyRun(buf: Uint8Array, start: number, max: number, frameSize: number, pgnos: Uint32Array, commits: Uint32Array): number {
    const be = this.header.bigEndianChecksum;
    const native = nativeWalVerifyRun();
    if (native) {
      const chain = this.#chainWords;
      chain[0] = this.#s0;
      chain[1] = this.#s1;
      // The binding takes at most 2 GiB of bytes at once; a run that ends sooner is read on from there.
      const count = Math.min(max, Math.floor(NATIVE_MAX_BYTES / frameSize));
      const run = buf.subarray(start, start + count * frameSize);
      const n = native(run, 0, count, frameSize, be, this.header.salt1, this.header.salt2, chain, pgnos, commits);
      this.#s0 = chain[0]!;
      this.#s1 = chain[1]!;
      return n;
    }
    if (!readsNativeWords(be, buf) || start % 4 !== 0 || frameSize % 8 !== 0) {
      // Unaligned or foreign-order words: one frame at a time through the general path.
      let n = 0;
      for (; n < max; n++) {
        const frame = buf.subarray(start + n * frameSize, start + (n + 1) * frameSize);
        const h = parseWalFrameHeader(frame);
        if (this.verify(frame, h) !== 'ok') break;
        pgnos[n] = h.pgno;
        commits[n] = h.commitSize;
      }
      return n;
    }
    const w = this.#wordsFor(buf.buffer);
    const salt1 = this.header.salt1;
    const salt2 = this.header.salt2;
    const frameWords = frameSize >>> 2;
    const sum = this.#sum;
    let n = 0;
    for (let at = start; n < max; n++, at += frameSize) {
      const pgno = be32(buf, at);
      if (pgno === 0 || be32(buf, at + 8) !== salt1 || be32(buf, at + 12) !== salt2) break;
      this.#sumFrame(w, (buf.byteOffset + at) >>> 2, frameWords);
      const x = sum.a >>> 0;
      const y = sum.b >>> 0;
      if (x !== be32(buf, at + 16) || y !== be32(buf, at + 20)) break;
      this.#s0 = x;
      this.#s1 = y;
      pgnos[n] = pgno;
      commits[n] = be32(buf, at + 4);
    }
    return n;
  }

  /**
   * A word view of all of `memory`, kept while frames come from the same memory (frames are usually
   * views into one large chunk): nothing is allocated per frame.
   */
  #wordsFor(memory: ArrayBufferLike): Int32Array {
    if (memory !== this.#wordsOf) {
      this.#wordsOf = memory;
      this.#words = new Int32Array(memory, 0, memory.byteLength >>> 2);
    }
    return this.#words!;
  }

  /**
   * Sums the frame whose first word is `base` in `w` (its 8 header bytes, then its page, up to word
   * `base + frameWords`), continuing the chain, into #sum. The sums stay in addNativeWords, a small
   * function V8 optimises on its own: inlined into a caller, the loop ran unoptimised for a while in
   * a fresh process whenever that caller deoptimised.
   */
  #sumFrame(w: Int32Array, base: number, frameWords: number): void {
    const sum = this.#sum;
    sum.a = this.#s0;
    sum.b = this.#s1;
    addNativeWords(w, base, base + 2, sum);
    addNativeWords(w, base + (WAL_FRAME_HEADER_SIZE >>> 2), base + frameWords, sum);
  }

  /** The buffer #words views, kept so consecutive frames of one chunk share it. */
  #wordsOf: ArrayBufferLike | undefined;
  #words: Int32Array | undefined;
  /** Scratch pair for `verify`, reused for every frame. */
  readonly #sum: ChecksumPair = { a: 0, b: 0 };
  readonly #chainWords = new Uint32Array(2);
}
