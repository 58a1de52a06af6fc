import { ByteReader } from './byte-reader.js';
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

  constructor(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options?: { resume?: WalResumePoint }) {
    this.#reader = new ByteReader(source);
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

  /**
   * Returns the next verified frame when its bytes are already buffered (or null once reading has
   * stopped), without waiting; returns undefined when the next frame needs more input (call `next`).
   * Lets a consumer handle a chunk's frames without an await per frame.
   */
  nextBuffered(): WalFrame | null | undefined {
    if (!this.#chain) return undefined;
    if (this.#stopped) return null;
    const frame = this.#reader.takeBuffered(this.#frameSize);
    return frame ? this.#accept(frame) : undefined;
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
  while (await reader.next());
  return {
    header,
    frames: reader.frames,
    validOffset: reader.validOffset,
    lastCommitOffset: reader.lastCommitOffset,
    lastCommitSize: reader.lastCommitSize,
    stopReason: reader.stopReason ?? 'end',
  };
}
