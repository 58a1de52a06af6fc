import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { xxh32 } from '@node-rs/xxhash';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test/helpers.js';
import { ChecksumMismatchError, CorruptDataError, Lz4FrameError } from './errors.js';
import { readFileChunks } from './file-chunks.js';
import { decodeLz4Frame, encodeLz4Frame, lz4CompressFrame, lz4DecompressFrame, releaseDecodedBlock } from './lz4-frame.js';
import { lz4Backend } from './lz4-native.js';

const run = promisify(execFile);

/** Text-like, compressible content resembling database pages, with some random runs. */
function sample(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = (i & 0xfff) < 512 ? x >>> 24 : 97 + ((x >>> 16) % 13);
  }
  return out;
}

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir, cleanup } = await tempDir()));
afterAll(() => cleanup());

describe('LZ4 frames', () => {
  it('round-trips empty, tiny, block-sized and multi-block inputs', async () => {
    for (const size of [0, 1, 100, 65_536, 4 * 1024 * 1024, 4 * 1024 * 1024 + 1, 9 * 1024 * 1024 + 7]) {
      const data = sample(size, size);
      const frame = await lz4CompressFrame(data);
      expect((await lz4DecompressFrame(frame)).equals(data)).toBe(true);
    }
  });

  it('decodes several frames at once, interleaved, each to its own bytes (decoders share spare buffers)', async () => {
    const inputs = [sample(3 * 65_536 + 17, 5), sample(5 * 65_536 + 3, 6), sample(2 * 65_536, 7)];
    const frames = await Promise.all(inputs.map((d) => lz4CompressFrame(d, { blockSize: 65_536 })));
    // 4 KiB chunks, each a turn of the event loop apart: every compressed block spans chunks, so each
    // decoder is suspended halfway through filling its buffer while the others fill theirs.
    const chunked = async function* (b: Buffer) {
      for (let o = 0; o < b.length; o += 4096) {
        await new Promise((r) => setImmediate(r));
        yield b.subarray(o, o + 4096);
      }
    };
    for (let round = 0; round < 2; round++) {
      const outs = await Promise.all(
        frames.map(async (f) => {
          const parts: Buffer[] = [];
          for await (const p of decodeLz4Frame(chunked(f))) parts.push(Buffer.from(p));
          return Buffer.concat(parts);
        }),
      );
      for (const [k, d] of inputs.entries()) expect(outs[k]!.equals(d)).toBe(true);
    }
  });

  it('writes frames as Litestream does: independent 4 MiB blocks with a content checksum', async () => {
    const frame = await lz4CompressFrame(sample(1000));
    expect(frame.readUInt32LE(0)).toBe(0x184d2204);
    expect(frame[4]).toBe(0x64); // version 01, independent blocks, content checksum
    expect(frame[5]).toBe(0x70); // 4 MiB blocks
  });

  it('keeps each block intact when one input chunk fills several blocks after a partial one', async () => {
    // Regression: the encoder reuses its block buffer; the block must be compressed before it is refilled.
    const mib = 1024 * 1024;
    const parts = [randomBytes(100), Buffer.concat([Buffer.alloc(5 * mib, 7), randomBytes(4 * mib)]), randomBytes(50)];
    const chunks: Buffer[] = [];
    for await (const c of encodeLz4Frame(parts)) chunks.push(c);
    const decoded = await lz4DecompressFrame(Buffer.concat(chunks));
    expect(decoded.equals(Buffer.concat(parts))).toBe(true);
  });

  it('round-trips any chunking of any content (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 200_000 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { maxLength: 8 }),
        fc.constantFrom(65_536, 262_144, 4_194_304),
        fc.boolean(),
        async (data, cuts, blockSize, blockChecksum) => {
          const chunks: Uint8Array[] = [];
          let at = 0;
          for (const c of cuts) {
            chunks.push(data.subarray(at, at + c));
            at += c;
          }
          chunks.push(data.subarray(at));
          const parts: Buffer[] = [];
          for await (const p of encodeLz4Frame(chunks, { blockSize: blockSize as 65_536, blockChecksum })) parts.push(p);
          const frame = Buffer.concat(parts);
          expect((await lz4DecompressFrame(frame)).equals(Buffer.from(data))).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('rejects any truncation with a typed error (property)', async () => {
    const data = sample(300_000);
    const frame = await lz4CompressFrame(data, { blockSize: 65_536 });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: frame.length - 1 }), async (cut) => {
        const err = await lz4DecompressFrame(frame.subarray(0, cut)).catch((e) => e);
        expect(err).toBeInstanceOf(CorruptDataError);
      }),
      { numRuns: 80 },
    );
  });

  it('never returns wrong bytes for a corrupted frame (property)', async () => {
    const data = sample(300_000);
    const frame = await lz4CompressFrame(data, { blockSize: 65_536 });
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: frame.length - 1 }), fc.integer({ min: 1, max: 255 }), async (at, xor) => {
        const bad = Buffer.from(frame);
        bad[at] = bad[at]! ^ xor;
        const result = await lz4DecompressFrame(bad).then(
          (b) => b,
          (e) => e,
        );
        // Either a typed error, or (when the flipped byte is one the format does not check, which the
        // content checksum makes impossible for block data) exactly the original bytes.
        if (result instanceof Error) expect(result).toBeInstanceOf(CorruptDataError);
        else expect(result.equals(data)).toBe(true);
      }),
      { numRuns: 150 },
    );
  });

  it('reports content and block checksum mismatches as ChecksumMismatchError', async () => {
    const data = sample(100_000);
    const frame = await lz4CompressFrame(data, { blockSize: 65_536, blockChecksum: true });
    const bad = Buffer.from(frame);
    bad[frame.length - 1]! ^= 1; // content checksum
    await expect(lz4DecompressFrame(bad)).rejects.toBeInstanceOf(ChecksumMismatchError);
    const bad2 = Buffer.from(frame);
    bad2[20]! ^= 1; // inside the first block's data
    await expect(lz4DecompressFrame(bad2)).rejects.toBeInstanceOf(ChecksumMismatchError);
  });

  it('rejects input that is not an LZ4 frame', async () => {
    await expect(lz4DecompressFrame(Buffer.from('SQLite format 3\0'))).rejects.toBeInstanceOf(Lz4FrameError);
    await expect(lz4DecompressFrame(Buffer.alloc(0))).rejects.toBeInstanceOf(Lz4FrameError);
  });

  it('decodes concatenated and skippable frames', async () => {
    const a = await lz4CompressFrame(Buffer.from('hello '));
    const skip = Buffer.alloc(12);
    skip.writeUInt32LE(0x184d2a53, 0);
    skip.writeUInt32LE(4, 4);
    const b = await lz4CompressFrame(Buffer.from('world'));
    expect((await lz4DecompressFrame(Buffer.concat([a, skip, b]))).toString()).toBe('hello world');
  });

  it('stops early without leaking when the consumer stops', async () => {
    const frame = await lz4CompressFrame(sample(10 * 1024 * 1024));
    for await (const block of decodeLz4Frame([frame])) {
      expect(block.length).toBeGreaterThan(0);
      break;
    }
  });
});

describe('interop with the lz4 CLI', () => {
  const data = sample(9 * 1024 * 1024 + 123, 7);
  const variants = [['-1'], ['-9'], ['-B4'], ['-B5'], ['-B6'], ['-B7'], ['--content-size'], ['-BD'], ['-BD', '-B4'], ['-B4', '--no-frame-crc'], ['-B5', '-BX']];
  for (const flags of variants) {
    it(`decodes lz4 ${flags.join(' ')}`, async () => {
      const src = join(dir, `in-${flags.join('')}`);
      await writeFile(src, data);
      await run('lz4', ['-q', '-f', ...flags, src, `${src}.lz4`]);
      const out = await lz4DecompressFrame(await readFile(`${src}.lz4`));
      expect(out.equals(data)).toBe(true);
    });
  }

  it('writes frames lz4 -d decodes, for every block size and with block checksums', async () => {
    for (const [blockSize, blockChecksum] of [
      [4_194_304, false],
      [65_536, true],
      [1_048_576, false],
    ] as const) {
      const file = join(dir, `ours-${blockSize}.lz4`);
      await writeFile(file, await lz4CompressFrame(data, { blockSize, blockChecksum }));
      await run('lz4', ['-q', '-d', '-f', file, `${file}.out`]);
      expect((await readFile(`${file}.out`)).equals(data)).toBe(true);
    }
  });

  it('writes incompressible data as raw blocks that lz4 -d decodes', async () => {
    const random = randomBytes(5 * 1024 * 1024);
    const file = join(dir, 'random.lz4');
    await writeFile(file, await lz4CompressFrame(random));
    await run('lz4', ['-q', '-d', '-f', file, `${file}.out`]);
    expect((await readFile(`${file}.out`)).equals(random)).toBe(true);
    expect((await lz4DecompressFrame(await readFile(file))).equals(random)).toBe(true);
  });

  it('compresses a long stream on this thread, or with workers, into frames lz4 -d decodes', async () => {
    // 160 MiB of unknown size is compressed on this thread; the second run says its size up front
    // and uses the workers (with this thread) from its first block. The source
    // yields whole blocks and chunks that straddle blocks (copied into the encoder's own buffer).
    const mib = 1024 * 1024;
    const unit = sample(8 * mib, 3);
    const chunks = function* () {
      for (let i = 0; i < 20; i++) {
        const part = Buffer.from(unit);
        part.writeUInt32LE(i, 100); // each 8 MiB differs, so a block landing in the wrong place shows
        if (i % 2 === 0) {
          yield part;
        } else {
          for (let o = 0; o < part.length; o += 3 * mib + 5) yield part.subarray(o, o + 3 * mib + 5);
        }
      }
    };
    const expected = Buffer.concat([...chunks()]);
    for (const options of [{}, { expectedBytes: 160 * mib }]) {
      const file = join(dir, 'long.lz4');
      const parts: Buffer[] = [];
      for await (const p of encodeLz4Frame(chunks(), options)) parts.push(p);
      await writeFile(file, Buffer.concat(parts));
      await run('lz4', ['-q', '-d', '-f', file, `${file}.out`]);
      const out = await readFile(`${file}.out`);
      expect(out.length).toBe(160 * mib);
      expect(out.equals(expected)).toBe(true);
    }
  }, 60_000);

  it('keeps nothing from the source once it asks for more: blocks stored uncompressed survive a refilled buffer', async () => {
    // 72 MiB: compressible content with 24 MiB of random bytes (blocks LZ4 cannot shrink, stored as
    // they are). The source refills one buffer with the next piece as soon as it is asked for it, and
    // poisons it in between, so a block that still pointed into it would decode to the wrong bytes.
    const mib = 1024 * 1024;
    const data = sample(72 * mib, 5);
    randomBytes(24 * mib).copy(data, 30 * mib + 12_345);
    const oneBuffer = (piece: number) =>
      (async function* () {
        const buf = Buffer.alloc(piece);
        for (let at = 0; at < data.length; at += piece) {
          const n = data.copy(buf, 0, at, Math.min(at + piece, data.length));
          yield buf.subarray(0, n);
          buf.fill(0xee);
        }
      })();
    const collect = async (it: AsyncIterable<Buffer>) => {
      const parts: Buffer[] = [];
      for await (const p of it) parts.push(p);
      return Buffer.concat(parts);
    };
    // Pieces of a whole block (compressed straight from the source), and pieces that straddle blocks
    // (gathered in the encoder's own buffer); on this thread, and with the worker pool (size given).
    for (const piece of [4 * mib, 3 * mib + 17, mib]) {
      for (const options of [{}, { expectedBytes: data.length }]) {
        const frame = await collect(encodeLz4Frame(oneBuffer(piece), options));
        const back = await collect(decodeLz4Frame([frame]));
        expect(back.length).toBe(data.length);
        expect(back.equals(data)).toBe(true);
      }
    }
    // The snapshot path: a file read through readFileChunks, one block per chunk, with the pool.
    const file = join(dir, 'mixed.db');
    await writeFile(file, data);
    const frame = await collect(encodeLz4Frame(readFileChunks(file, { chunkBytes: 4 * mib }), { expectedBytes: data.length }));
    await writeFile(`${file}.lz4`, frame);
    await run('lz4', ['-q', '-d', '-f', `${file}.lz4`, `${file}.out`]);
    expect((await readFile(`${file}.out`)).equals(data)).toBe(true);
  }, 120_000);

  it('decodes from a source that refills one buffer: nothing read is used after the next chunk is asked for', async () => {
    // Frames with stored (random) blocks, block checksums, a content size and linked blocks; the
    // source hands out pieces of one buffer and poisons it as soon as it is asked for the next, with
    // piece sizes that split headers, sizes and checksums across chunks.
    const mib = 1024 * 1024;
    const data = sample(9 * mib, 11);
    randomBytes(3 * mib).copy(data, 2 * mib + 7);
    const file = join(dir, 'reuse.bin');
    await writeFile(file, data);
    await run('lz4', ['-q', '-f', '-BD', '-B4', '--content-size', file, `${file}.linked.lz4`]);
    const frames = [
      await lz4CompressFrame(data),
      await lz4CompressFrame(data, { blockChecksum: true, blockSize: 262_144 }),
      await readFile(`${file}.linked.lz4`),
    ];
    for (const frame of frames) {
      for (const piece of [1, 3, 4096 + 3, 65_536, mib + 1]) {
        if (piece < 4096 && frame.length > mib) {
          // Byte-sized pieces only over the first few blocks' worth, to keep the test quick.
          const head = frame.subarray(0, 2 * 65_536 + 64);
          await expect(collectFrom(decodeLz4Frame(oneBufferOf(head, piece)))).rejects.toThrow(Lz4FrameError);
          continue;
        }
        const back = await collectFrom(decodeLz4Frame(oneBufferOf(frame, piece)));
        expect(back.equals(data)).toBe(true);
      }
    }
  }, 120_000);

  it('reuses the memory of blocks given back, and only theirs, for later blocks', async () => {
    const mib = 1024 * 1024;
    const a = sample(12 * mib, 21);
    const b = sample(12 * mib, 22);
    const frameA = await lz4CompressFrame(a);
    const frameB = await lz4CompressFrame(b);
    const given = new Set<ArrayBufferLike>();
    const partsA: Buffer[] = [];
    for await (const block of decodeLz4Frame([frameA])) {
      partsA.push(Buffer.from(block));
      given.add(block.buffer);
      releaseDecodedBlock(block);
      releaseDecodedBlock(block); // a second time is ignored
    }
    expect(Buffer.concat(partsA).equals(a)).toBe(true);
    releaseDecodedBlock(Buffer.alloc(8 * mib)); // not the decoder's: ignored
    const blocksB: Buffer[] = [];
    for await (const block of decodeLz4Frame([frameB])) blocksB.push(block);
    // Every block of B is intact although it may sit in memory A's blocks gave back.
    expect(Buffer.concat(blocksB).equals(b)).toBe(true);
    const reused = blocksB.filter((x) => given.has(x.buffer)).length;
    if (lz4Backend().name === 'liblz4') expect(reused).toBeGreaterThan(0);
    else expect(reused).toBe(0); // lz4-napi allocates its own output; giving back is a no-op
  });

  it('reuses the memory of small blocks given back (frames of small WAL segments), and keeps held ones intact', async () => {
    const kib = 1024;
    // Frames of one block each, of various sizes under 2 MiB, as restore decodes WAL segments.
    const datas = [700, 1500, 90, 1900, 300, 1200, 50, 1800].map((k, i) => sample(k * kib, 40 + i));
    const frames = await Promise.all(datas.map((d) => lz4CompressFrame(d)));
    // Copied into small buffers by default; with blocksGivenBack, yielded in their 4 MiB buffers.
    for (const blocksGivenBack of [false, true]) {
      const memory = new Set<ArrayBufferLike>();
      const held: { block: Buffer; data: Buffer }[] = [];
      for (const [i, frame] of frames.entries()) {
        const blocks: Buffer[] = [];
        for await (const block of decodeLz4Frame([frame], { blocksGivenBack })) blocks.push(block);
        expect(Buffer.concat(blocks).equals(datas[i]!)).toBe(true);
        for (const block of blocks) {
          memory.add(block.buffer);
          if (lz4Backend().name === 'liblz4') expect(block.buffer.byteLength >= 4 * 1024 * kib).toBe(blocksGivenBack);
          // Every other frame's blocks are kept: their memory must not be reused under them.
          if (i % 2 === 0) releaseDecodedBlock(block);
          else held.push({ block, data: datas[i]! });
        }
      }
      for (const h of held) expect(h.block.equals(h.data)).toBe(true);
      if (lz4Backend().name === 'liblz4') expect(memory.size).toBeLessThan(frames.length);
    }
  });

  it('ignores a stale second release of a block whose memory a later block already uses', async () => {
    const mib = 1024 * 1024;
    const data = sample(24 * mib, 23);
    const frame = await lz4CompressFrame(data);
    const blocks: Buffer[] = [];
    let first: Buffer | undefined;
    for await (const block of decodeLz4Frame([frame])) {
      blocks.push(block);
      if (!first) {
        first = block;
        releaseDecodedBlock(block);
      } else if (block.buffer === first.buffer) {
        releaseDecodedBlock(first); // stale: that memory is `block` now, which the caller still holds
      }
    }
    // Every block after the first (given back, so its bytes may have changed) holds its own bytes.
    let at = blocks[0]!.length;
    for (const block of blocks.slice(1)) {
      expect(block.equals(data.subarray(at, at + block.length))).toBe(true);
      at += block.length;
    }
    expect(at).toBe(data.length);
  });

  it('reports the first faulty block, even while a later bad one was already read', async () => {
    // Block 2 cannot be decompressed (its block checksum is right); block 3's block checksum is wrong.
    const mib = 1024 * 1024;
    const frame = Buffer.from(await lz4CompressFrame(sample(6 * mib, 24), { blockSize: 1_048_576, blockChecksum: true }));
    const starts: number[] = [];
    for (let p = 7; frame.readUInt32LE(p) !== 0; p += 8 + (frame.readUInt32LE(p) & 0x7fffffff)) starts.push(p);
    const size = (i: number) => frame.readUInt32LE(starts[i]!) & 0x7fffffff;
    frame.fill(0xff, starts[2]! + 4, starts[2]! + 4 + 64);
    frame.writeUInt32LE(xxh32(frame.subarray(starts[2]! + 4, starts[2]! + 4 + size(2)), 0) >>> 0, starts[2]! + 4 + size(2));
    frame[starts[3]! + 4 + size(3)]! ^= 1;
    const err = await collectFrom(decodeLz4Frame([frame])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Lz4FrameError);
    expect(err).not.toBeInstanceOf(ChecksumMismatchError);
    expect((err as Lz4FrameError).offset).toBe(starts[2]);
  });

  it(`uses liblz4 when its binding is built (backend here: ${lz4Backend().name})`, () => {
    // CI requires the binding (LSTREAM_NATIVE_REQUIRED=1): there the faster backend must be the one
    // every other test ran on. lz4-frame.napi.test.ts runs this file's cases on lz4-napi.
    const backend = lz4Backend();
    if (process.env.LSTREAM_NATIVE_REQUIRED === '1' && process.env.LSTREAM_LZ4 !== 'lz4-napi') {
      expect(backend).toMatchObject({ name: 'liblz4' });
      expect(backend.version).toMatch(/^1\.(9|[1-9]\d)\.\d+$/);
    } else {
      expect(['liblz4', 'lz4-napi']).toContain(backend.name);
      if (backend.name === 'lz4-napi') expect(backend.reason).toBeTruthy();
    }
  });
});

/** Pieces of `data`, each handed out in the same buffer, which is poisoned when the next is asked for. */
async function* oneBufferOf(data: Buffer, piece: number): AsyncGenerator<Buffer> {
  const buf = Buffer.alloc(piece);
  for (let at = 0; at < data.length; at += piece) {
    const n = data.copy(buf, 0, at, Math.min(at + piece, data.length));
    yield buf.subarray(0, n);
    buf.fill(0xee);
  }
}

async function collectFrom(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts);
}
