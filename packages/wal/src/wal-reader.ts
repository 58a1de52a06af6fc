import { ByteReader, type ChunkWatcher } from './byte-reader.js';
import { WalFormatError } from './errors.js';
import {
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  WalChain,
  parseWalFrameHeader,
  parseWalHeader,
  walFrameSize,
  type WalHeader,
  type WalStopReason,
} from './wal-format.js';

/** One verified WAL frame. `frame` and `page` are views valid until the next `next()` call. */
export interface WalFrame {
  /** Byte offset of the frame in the WAL file. */
  offset: number;
  pgno: number;
  /** Database size in pages after the transaction; non-zero only on a commit frame. */
  commitSize: number;
  frame: Buffer;
  page: Buffer;
}

/**
 * Verified frames that lie whole in one input chunk, read in place: frame k starts at byte
 * `start + k × frameSize` of `chunk`. Valid until the reader is next called.
 */
export interface WalFrameBatch {
  readonly chunk: Buffer;
  readonly start: number;
  readonly count: number;
  readonly frameSize: number;
  /** Byte offset of the first frame in the WAL file. */
  readonly offset: number;
  /** Page number of frame k at index k (only the first `count` entries are this batch's). */
  readonly pgnos: Uint32Array;
  /** Commit size of frame k at index k: non-zero on a commit frame. */
  readonly commits: Uint32Array;
}

/** Where to resume reading a WAL in the middle: the header and the checksum of the frame before `offset`. */
export interface WalResumePoint {
  offset: number;
  header: WalHeader;
  checksum: readonly [number, number];
}

/**
 * Reads the frames of a SQLite WAL from a byte stream, yielding only frames whose salts and checksums
 * continue the chain. It stops without error at the end of input, at a partial frame, at a salt change
 * or at a checksum break; `stopReason` says which, and `lastCommitOffset` gives the end of the last
 * complete transaction. Without a resume point the stream must start with the WAL header.
 */
export class WalFrameReader implements AsyncIterable<WalFrame> {
  readonly #reader: ByteReader;
  readonly #resume: WalResumePoint | undefined;
  #chain: WalChain | undefined;
  #header: WalHeader | undefined;
  #offset = 0;
  #frameSize = 0;
  #stopped = false;

  /** End offset of the last verified frame. */
  validOffset = 0;
  /** End offset of the last verified commit frame (the end of the last complete transaction). */
  lastCommitOffset = 0;
  /** Database size in pages recorded by the last verified commit frame (0 before any commit). */
  lastCommitSize = 0;
  /** Checksum chain value at `lastCommitOffset`, for resuming a later read there. */
  lastCommitChecksum: [number, number] = [0, 0];
  /** Number of verified frames so far. */
  frames = 0;
  /** Why reading stopped; undefined while frames may still come. */
  stopReason: WalStopReason | undefined;

  /**
   * `watch` hears when reading enters and leaves each chunk of `source` (see ChunkWatcher), for a
   * consumer that keeps pages in place in the chunks of batches.
   */
  constructor(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options?: { resume?: WalResumePoint; watch?: ChunkWatcher },
  ) {
    this.#reader = new ByteReader(source, options?.watch);
    this.#resume = options?.resume;
  }

  /**
   * Returns the WAL header, reading it first when the stream starts at offset 0.
   * Throws WalFormatError when the header is missing or invalid.
   */
  async header(): Promise<WalHeader> {
    if (this.#header) return this.#header;
    if (this.#resume) {
      this.#header = this.#resume.header;
      this.#offset = this.#resume.offset;
      this.#chain = new WalChain(this.#header, this.#resume.checksum);
      this.lastCommitChecksum = [...this.#resume.checksum];
    } else {
      const buf = await this.#reader.read(WAL_HEADER_SIZE);
      if (buf.length < WAL_HEADER_SIZE) {
        throw new WalFormatError(`WAL is ${buf.length} bytes, shorter than its ${WAL_HEADER_SIZE}-byte header`, {
          offset: 0,
        });
      }
      this.#header = parseWalHeader(buf);
      this.#offset = WAL_HEADER_SIZE;
      this.#chain = new WalChain(this.#header);
      this.lastCommitChecksum = [this.#header.checksum1, this.#header.checksum2];
    }
    this.validOffset = this.#offset;
    this.lastCommitOffset = this.#offset;
    this.#frameSize = walFrameSize(this.#header.pageSize);
    return this.#header;
  }

  #pgnos = new Uint32Array(0);
  #commits = new Uint32Array(0);

  /**
   * Returns the frames already buffered in the current input chunk that continue the chain, as one
   * batch read in place (no view or object per frame), without waiting; null once reading has
   * stopped; undefined when the next frame is not wholly buffered (call `next`). The fastest way
   * to read a WAL: `WalApplier` takes frames this way.
   */
  bufferedFrames(): WalFrameBatch | null | undefined {
    if (!this.#chain) return undefined;
    if (this.#stopped) return null;
    const { chunk, pos } = this.#reader.buffered;
    const frameSize = this.#frameSize;
    const max = Math.floor((chunk.length - pos) / frameSize);
    if (max === 0) return undefined;
    if (this.#pgnos.length < max) {
      this.#pgnos = new Uint32Array(max);
      this.#commits = new Uint32Array(max);
    }
    const pgnos = this.#pgnos;
    const commits = this.#commits;
    const count = this.#chain.verifyRun(chunk, pos, max, frameSize, pgnos, commits);
    // The frame that broke the run: the per-frame path records why reading stops there.
    if (count === 0) {
      if (this.#accept(this.#reader.takeBuffered(frameSize)!) === null) return null;
      throw new Error('internal error: the WAL chain check of a run and of one frame disagree');
    }
    const offset = this.#offset;
    this.#reader.skip(count * frameSize);
    this.#offset += count * frameSize;
    this.validOffset = this.#offset;
    this.frames += count;
    for (let k = count - 1; k >= 0; k--) {
      if (commits[k] !== 0) {
        const at = pos + k * frameSize;
        this.lastCommitOffset = offset + (k + 1) * frameSize;
        this.lastCommitSize = commits[k]!;
        // A verified frame's checksum fields are the chain's value after it.
        this.lastCommitChecksum = [chunk.readUInt32BE(at + 16), chunk.readUInt32BE(at + 20)];
        break;
      }
    }
    return { chunk, start: pos, count, frameSize, offset, pgnos, commits };
  }

  /** Returns the next verified frame, or null once reading has stopped (see `stopReason`). */
  async next(): Promise<WalFrame | null> {
    if (!this.#chain) await this.header();
    if (this.#stopped) return null;
    const frame = await this.#reader.read(this.#frameSize);
    if (frame.length < this.#frameSize) {
      return this.#stop(frame.length === 0 ? 'end' : 'partial-frame');
    }
    return this.#accept(frame);
  }

  #accept(frame: Buffer): WalFrame | null {
    const h = parseWalFrameHeader(frame);
    const verdict = this.#chain!.verify(frame, h);
    if (verdict !== 'ok') return this.#stop(verdict);
    const offset = this.#offset;
    this.#offset += this.#frameSize;
    this.validOffset = this.#offset;
    this.frames++;
    if (h.commitSize !== 0) {
      this.lastCommitOffset = this.#offset;
      this.lastCommitSize = h.commitSize;
      this.lastCommitChecksum = this.#chain!.checksum;
    }
    return { offset, pgno: h.pgno, commitSize: h.commitSize, frame, page: frame.subarray(WAL_FRAME_HEADER_SIZE) };
  }

  /** Returns true when bytes remain in the input after reading stopped (trailing or invalid data). */
  async hasTrailingBytes(): Promise<boolean> {
    return !(await this.#reader.atEnd());
  }

  /** Stops reading and releases the underlying stream. */
  async close(): Promise<void> {
    this.#stopped = true;
    await this.#reader.close();
  }

  #stop(reason: WalStopReason): null {
    this.#stopped = true;
    this.stopReason = reason;
    return null;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WalFrame> {
    try {
      for (let f = await this.next(); f; f = await this.next()) yield f;
    } finally {
      if (this.stopReason === undefined) await this.close();
    }
  }
}

/** Summary of a WAL scan: how far its frames continue the chain and where its last transaction ends. */
export interface WalScanResult {
  header: WalHeader;
  frames: number;
  validOffset: number;
  lastCommitOffset: number;
  lastCommitSize: number;
  stopReason: WalStopReason;
}

/** Reads a whole WAL stream and reports how much of it is a valid, committed chain. */
export async function scanWal(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<WalScanResult> {
  const reader = new WalFrameReader(source);
  const header = await reader.header();
  for (;;) {
    const batch = reader.bufferedFrames();
    if (batch === null) break;
    if (batch === undefined && !(await reader.next())) break;
  }
  return {
    header,
    frames: reader.frames,
    validOffset: reader.validOffset,
    lastCommitOffset: reader.lastCommitOffset,
    lastCommitSize: reader.lastCommitSize,
    stopReason: reader.stopReason ?? 'end',
  };
}
