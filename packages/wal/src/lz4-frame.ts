import { Xxh32, xxh32 } from '@node-rs/xxhash';
import {
  LARGE_STREAM_BYTES,
  compressDepth,
  lz4Threads,
  poolCompress,
  poolUncompress,
  uncompressDepth,
  warmCompressPool,
} from './lz4-pool.js';
import { nativeLz4 } from './lz4-native.js';
import { SpareBuffers } from './spare-buffers.js';

export { releaseDecodedBlock } from './lz4-pool.js';
import { ByteReader } from './byte-reader.js';
import { ChecksumMismatchError, Lz4FrameError } from './errors.js';

/** Magic number that starts a standard LZ4 frame (read little-endian). */
export const LZ4_FRAME_MAGIC = 0x184d2204;
/** Block size Litestream v0.3 writes and lstream writes by default: 4 MiB. */
export const LZ4_DEFAULT_BLOCK_SIZE = 4 * 1024 * 1024;

const BLOCK_SIZES: Record<number, number> = { 4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024 };
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const UNCOMPRESSED_FLAG = 0x80000000;
/** Window a linked block may reach back into, in bytes. */
const LINKED_WINDOW = 64 * 1024;

/** Options for writing an LZ4 frame. */
export interface Lz4EncodeOptions {
  /** Maximum block size: 64 KiB, 256 KiB, 1 MiB or 4 MiB (default, as Litestream writes). */
  blockSize?: 65_536 | 262_144 | 1_048_576 | 4_194_304;
  /** Append an xxh32 checksum to every block (default false, as Litestream). */
  blockChecksum?: boolean;
  /**
   * Bytes the source will yield, when known (a snapshot knows its database's size). A stream known to
   * pass LARGE_STREAM_BYTES is compressed by a worker pool from its first block, off the calling
   * thread.
   */
  expectedBytes?: number;
}

/** Options for reading LZ4 frames. */
export interface Lz4DecodeOptions {
  /**
   * The caller gives every block back with `releaseDecodedBlock` once done with it: then each block
   * is yielded in the memory it was decompressed into, even a small one (the tail of a frame, a small
   * WAL segment), which otherwise is copied into a buffer of about its size so the large one can
   * serve the next block. Restore, which gives back every block, saves that copy (300 MiB of it
   * for a replica of ~200 WAL indexes). Has no effect on lz4-napi.
   */
  blocksGivenBack?: boolean;
}

function toBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

async function compressBlock(block: Buffer, blockChecksum: boolean, large: boolean): Promise<Buffer[]> {
  // The block's memory may be refilled by the caller while this waits: only the pool's result is
  // used after the await (it carries its own copy of a block stored uncompressed).
  const r = await poolCompress(block, large);
  if (r.raw) {
    const head = Buffer.allocUnsafe(4);
    head.writeUInt32LE((r.raw.length | UNCOMPRESSED_FLAG) >>> 0, 0);
    const parts = [head, r.raw];
    if (blockChecksum) parts.push(u32le(xxh32(r.raw, 0)));
    return parts;
  }
  // lz4-napi's block API prefixes the compressed data with the uncompressed size (u32 LE). Those four
  // bytes are overwritten with the frame's block header, so the block is emitted without a copy.
  const out = r.compressed;
  out.writeUInt32LE(out.length - 4, 0);
  if (!blockChecksum) return [out];
  return [out, u32le(xxh32(out.subarray(4), 0))];
}

function u32le(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

/**
 * Compresses a byte stream into one standard LZ4 frame (magic 0x184D2204) with independent blocks and
 * a content checksum, the form Litestream v0.3 writes and `lz4 -d` reads. Memory stays bounded by
 * a few blocks, whatever the input size. A source chunk is read before the next is asked for
 * (blocks compressed later are copied first), so a source that reuses its buffers is fine.
 */
export async function* encodeLz4Frame(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: Lz4EncodeOptions = {},
): AsyncGenerator<Buffer, void, undefined> {
  const blockSize = options.blockSize ?? LZ4_DEFAULT_BLOCK_SIZE;
  const bdId = Number(Object.entries(BLOCK_SIZES).find(([, v]) => v === blockSize)?.[0]);
  if (!bdId) throw new RangeError(`unsupported LZ4 block size ${blockSize}`);
  const blockChecksum = options.blockChecksum ?? false;
  // FLG: version 01, independent blocks, optional block checksum, content checksum.
  const flg = 0x40 | 0x20 | (blockChecksum ? 0x10 : 0) | 0x04;
  const bd = bdId << 4;
  const descriptor = Buffer.from([flg, bd]);
  const header = Buffer.alloc(7);
  header.writeUInt32LE(LZ4_FRAME_MAGIC, 0);
  header[4] = flg;
  header[5] = bd;
  header[6] = (xxh32(descriptor, 0) >>> 8) & 0xff;
  yield header;

  const hash = new Xxh32(0);
  // Blocks in flight, in order; each holds its own copy of its input, so `pending` is reused.
  const inflight: Promise<Buffer[]>[] = [];
  let pending: Buffer | undefined;
  let pendingLen = 0;
  // With liblz4, blocks of 256 KiB or more are compressed on libuv's thread pool. With lz4-napi, a
  // stream known to be large (a snapshot) goes to the worker pool, started now, while this thread
  // reads, hashes and writes, and any other stream is compressed here (see lz4-pool.ts).
  const large = (options.expectedBytes ?? 0) > LARGE_STREAM_BYTES && lz4Threads() > 1;
  if (large) warmCompressPool();
  const depth = large || nativeLz4() ? compressDepth() : lz4Threads() + 1;
  const submit = (data: Buffer) => {
    hash.update(data);
    const p = compressBlock(data, blockChecksum, large);
    p.catch(() => {}); // observed in order below
    inflight.push(p);
  };

  try {
    for await (const raw of source) {
      let chunk = toBuffer(raw);
      while (chunk.length > 0) {
        if (pendingLen === 0 && chunk.length >= blockSize) {
          submit(chunk.subarray(0, blockSize));
          chunk = chunk.subarray(blockSize);
        } else {
          pending ??= Buffer.allocUnsafe(blockSize);
          const take = Math.min(blockSize - pendingLen, chunk.length);
          chunk.copy(pending, pendingLen, 0, take);
          pendingLen += take;
          chunk = chunk.subarray(take);
          if (pendingLen === blockSize) {
            submit(pending);
            pendingLen = 0;
          }
        }
        while (inflight.length >= depth) yield* await inflight.shift()!;
      }
    }
    if (pendingLen > 0) submit(pending!.subarray(0, pendingLen));
    while (inflight.length > 0) yield* await inflight.shift()!;
  } finally {
    await Promise.allSettled(inflight);
  }
  const end = Buffer.alloc(8);
  end.writeUInt32LE(hash.digest() >>> 0, 4);
  yield end;
}

interface FrameInfo {
  independent: boolean;
  blockChecksum: boolean;
  contentChecksum: boolean;
  contentSize: bigint | undefined;
  maxBlockSize: number;
}

async function readFrameHeader(reader: ByteReader, start: number): Promise<FrameInfo> {
  // Copied: the next read may ask the source for its next chunk, and a source that reuses its
  // buffers (readFileChunks) may then refill the one this would be a view of.
  const fixed = Buffer.from(await reader.read(2));
  if (fixed.length < 2) throw new Lz4FrameError('truncated LZ4 frame descriptor', { offset: start + 4 });
  const flg = fixed[0]!;
  const bd = fixed[1]!;
  if (flg >> 6 !== 1) throw new Lz4FrameError(`unsupported LZ4 frame version ${flg >> 6}`, { offset: start + 4 });
  if (flg & 0x02) throw new Lz4FrameError('reserved bit set in LZ4 FLG byte', { offset: start + 4 });
  if (bd & 0x8f) throw new Lz4FrameError('reserved bits set in LZ4 BD byte', { offset: start + 5 });
  const maxBlockSize = BLOCK_SIZES[(bd >> 4) & 0x07];
  if (!maxBlockSize) throw new Lz4FrameError(`invalid LZ4 block size id ${(bd >> 4) & 0x07}`, { offset: start + 5 });
  const hasContentSize = (flg & 0x08) !== 0;
  const hasDictId = (flg & 0x01) !== 0;
  const extra = await reader.read((hasContentSize ? 8 : 0) + (hasDictId ? 4 : 0) + 1);
  const extraLen = (hasContentSize ? 8 : 0) + (hasDictId ? 4 : 0) + 1;
  if (extra.length < extraLen) throw new Lz4FrameError('truncated LZ4 frame descriptor', { offset: start + 6 });
  const descriptor = Buffer.concat([fixed, extra.subarray(0, extraLen - 1)]);
  const hc = extra[extraLen - 1]!;
  if (((xxh32(descriptor, 0) >>> 8) & 0xff) !== hc) {
    throw new ChecksumMismatchError('LZ4 frame descriptor checksum mismatch', { offset: start + 4 + extraLen + 1 });
  }
  if (hasDictId) throw new Lz4FrameError('LZ4 frames with a dictionary id are not supported', { offset: start + 4 });
  return {
    independent: (flg & 0x20) !== 0,
    blockChecksum: (flg & 0x10) !== 0,
    contentChecksum: (flg & 0x04) !== 0,
    contentSize: hasContentSize ? extra.readBigUInt64LE(0) : undefined,
    maxBlockSize,
  };
}

/*
 * Scratch buffers for compressed blocks, shared by every decoder: a restore decodes one frame per
 * WAL segment, and a fresh 4 MiB buffer for each (about 1 GiB over ~250 segments) drove V8 to
 * collect garbage for external memory pressure dozens of times. A decoder takes one when it first
 * needs it (or a larger one) and gives it back when it ends, so no two decoders hold the same one.
 */
const spareScratch = new SpareBuffers(3);

async function decompressBlock(
  prefixed: Buffer,
  dict: Buffer | undefined,
  offset: number,
  offThread: boolean,
  keepSmall: boolean,
): Promise<Buffer> {
  try {
    return await poolUncompress(prefixed, dict, offThread, keepSmall);
  } catch (cause) {
    throw new Lz4FrameError(`corrupt LZ4 block at offset ${offset}`, { cause, offset });
  }
}

/**
 * Decompresses a stream holding one or more standard LZ4 frames (skippable frames are skipped), as
 * written by Litestream or by the `lz4` CLI with any block size, independent or linked blocks, and
 * with or without content size. Verifies block and content checksums when present. Rejects with
 * Lz4FrameError on malformed or truncated input and ChecksumMismatchError on a checksum mismatch.
 * Memory stays bounded by a few blocks. No view of a source chunk is kept once the next chunk is
 * asked for, so a source that reuses its buffers (`readFileChunks`) is fine; yielded blocks are the
 * caller's to keep.
 */
export async function* decodeLz4Frame(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options: Lz4DecodeOptions = {},
): AsyncGenerator<Buffer, void, undefined> {
  const keepSmall = options.blocksGivenBack === true;
  const reader = new ByteReader(source);
  // Buffers for compressed blocks (from the shared spares): one per block being decompressed. A
  // block decompressing on the thread pool holds its buffer until it settles.
  const freeScratch: Buffer[] = [];
  // Blocks read and handed to the decompressor, in order, not yet yielded.
  const ahead: Promise<Buffer>[] = [];
  const scratchFor = (bytes: number, maxBlockSize: number): Buffer => {
    const i = freeScratch.findIndex((b) => b.length >= bytes);
    if (i >= 0) return freeScratch.splice(i, 1)[0]!;
    // Taken before a smaller one is given back: if taking throws, the finally below must not give
    // back a buffer that is already on the spare list.
    const larger = spareScratch.take(maxBlockSize + 4);
    spareScratch.give(freeScratch.shift());
    return larger;
  };
  // With liblz4 on several cores, independent blocks are decompressed on the thread pool, one
  // ahead: the next block decompresses while this thread hashes and yields the one before (a
  // 64 MiB decode took ~90 ms this way, ~110 ms one block at a time). Otherwise each block is
  // decompressed here and yielded at once (a 1 GiB snapshot restore on lz4-napi peaked at 132-138 MB
  // this way, 140-146 MB with three blocks decoded ahead, in the same time).
  try {
    let frames = 0;
    for (;;) {
      const start = reader.consumed;
      const magicBuf = await reader.read(4);
      if (magicBuf.length === 0) {
        if (frames === 0) throw new Lz4FrameError('empty input: no LZ4 frame', { offset: 0 });
        return;
      }
      if (magicBuf.length < 4) throw new Lz4FrameError('truncated LZ4 magic number', { offset: start });
      const magic = magicBuf.readUInt32LE(0);
      if ((magic & SKIPPABLE_MAGIC_MASK) >>> 0 === SKIPPABLE_MAGIC) {
        const len = await reader.read(4);
        if (len.length < 4) throw new Lz4FrameError('truncated skippable frame', { offset: start + 4 });
        let skip = len.readUInt32LE(0);
        while (skip > 0) {
          const got = await reader.readSome(skip);
          if (got.length === 0) throw new Lz4FrameError('truncated skippable frame', { offset: reader.consumed });
          skip -= got.length;
        }
        frames++;
        continue;
      }
      if (magic !== LZ4_FRAME_MAGIC) {
        throw new Lz4FrameError(`not an LZ4 frame: bad magic 0x${magic.toString(16).padStart(8, '0')}`, {
          offset: start,
        });
      }
      const info = await readFrameHeader(reader, start);
      const hash = info.contentChecksum ? new Xxh32(0) : undefined;
      let produced = 0n;
      let window: Buffer | undefined;
      const depth = info.independent ? uncompressDepth() : 1;
      const emit = (block: Buffer) => {
        hash?.update(block);
        produced += BigInt(block.length);
        if (!info.independent) {
          // Keep the last 64 KiB of output as the dictionary for the next linked block.
          window =
            block.length >= LINKED_WINDOW
              ? Buffer.from(block.subarray(block.length - LINKED_WINDOW))
              : Buffer.concat([window ?? Buffer.alloc(0), block]).subarray(-LINKED_WINDOW);
        }
        return block;
      };
      // Reads the next block and hands it to the decompressor; undefined at the frame's end mark. The
      // block's promise comes wrapped: an async function returning a promise would wait for it.
      const readBlock = async (): Promise<{ block: Promise<Buffer> } | undefined> => {
        const blockOffset = reader.consumed;
        const sizeBuf = await reader.read(4);
        if (sizeBuf.length < 4) throw new Lz4FrameError('truncated LZ4 frame: missing block header or end mark', { offset: blockOffset });
        const word = sizeBuf.readUInt32LE(0);
        if (word === 0) return undefined;
        const raw = (word & UNCOMPRESSED_FLAG) !== 0;
        const size = word & 0x7fffffff;
        if (size > info.maxBlockSize) {
          throw new Lz4FrameError(`LZ4 block of ${size} bytes exceeds the frame's ${info.maxBlockSize}-byte maximum`, {
            offset: blockOffset,
          });
        }
        let scratch: Buffer | undefined;
        let data: Buffer;
        try {
          if (raw) {
            // Copied before the next read (see readFrameHeader), and so the output never pins a
            // larger input chunk.
            data = Buffer.from(await reader.read(size));
          } else {
            // uncompress() wants the output capacity in front (u32 LE); the frame's maximum is always enough.
            scratch = scratchFor(size + 4, info.maxBlockSize);
            scratch.writeUInt32LE(info.maxBlockSize, 0);
            const got = await reader.readInto(scratch, 4, size);
            data = scratch.subarray(4, 4 + got);
          }
          if (data.length < size) throw new Lz4FrameError('truncated LZ4 block', { offset: reader.consumed });
          if (info.blockChecksum) {
            const sum = await reader.read(4);
            if (sum.length < 4) throw new Lz4FrameError('truncated LZ4 block checksum', { offset: reader.consumed });
            if (sum.readUInt32LE(0) !== xxh32(data, 0) >>> 0) {
              throw new ChecksumMismatchError(`LZ4 block checksum mismatch at offset ${blockOffset}`, { offset: blockOffset });
            }
          }
        } catch (err) {
          // Never handed to the decompressor: the buffer is free again.
          if (scratch) freeScratch.push(scratch);
          throw err;
        }
        if (raw) return { block: Promise.resolve(data) };
        const s = scratch!;
        // `window` is only ever set for linked blocks, which are decompressed one at a time.
        const block = decompressBlock(s.subarray(0, size + 4), window, blockOffset, depth > 1, keepSmall).finally(() =>
          freeScratch.push(s),
        );
        block.catch(() => {}); // observed in order by the caller
        return { block };
      };
      for (;;) {
        let next: { block: Promise<Buffer> } | undefined;
        try {
          next = await readBlock();
        } catch (err) {
          // A block read before and still decompressing may hold the first fault: its error comes
          // first, as it would with blocks decompressed one at a time.
          for (const p of ahead) await p;
          throw err;
        }
        if (!next) break;
        ahead.push(next.block);
        while (ahead.length >= depth) yield emit(await ahead.shift()!);
      }
      while (ahead.length > 0) yield emit(await ahead.shift()!);
      if (info.contentChecksum) {
        const sum = await reader.read(4);
        if (sum.length < 4) throw new Lz4FrameError('truncated LZ4 frame: missing content checksum', { offset: reader.consumed });
        if (sum.readUInt32LE(0) !== hash!.digest() >>> 0) {
          throw new ChecksumMismatchError('LZ4 content checksum mismatch: the object is corrupt', { offset: reader.consumed - 4 });
        }
      }
      if (info.contentSize !== undefined && info.contentSize !== produced) {
        throw new Lz4FrameError(`LZ4 frame declares ${info.contentSize} bytes but holds ${produced}`, {
          offset: reader.consumed,
        });
      }
      frames++;
    }
  } finally {
    // A block still decompressing uses its buffer until it settles; only then can it be reused.
    await Promise.allSettled(ahead);
    for (const s of freeScratch) spareScratch.give(s);
    await reader.close();
  }
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p);
  return Buffer.concat(parts);
}

/** Compresses a whole buffer into one LZ4 frame (see `encodeLz4Frame`). */
export function lz4CompressFrame(data: Uint8Array, options?: Lz4EncodeOptions): Promise<Buffer> {
  return collect(encodeLz4Frame([data], options));
}

/** Decompresses a whole buffer of LZ4 frames (see `decodeLz4Frame`). */
export function lz4DecompressFrame(data: Uint8Array, options?: Lz4DecodeOptions): Promise<Buffer> {
  return collect(decodeLz4Frame([data], options));
}
