import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tempDir, writeWithSqlite } from '../test/helpers.js';
import { WalFormatError } from './errors.js';
import {
  WAL_HEADER_SIZE,
  WalChain,
  encodeWalFrame,
  encodeWalHeader,
  frameAlign,
  parseWalHeader,
  walChecksum,
  walFrameSize,
} from './wal-format.js';
import { WalFrameReader, scanWal } from './wal-reader.js';

/** Reference checksum straight from SQLite's description, one word at a time. */
function referenceChecksum(be: boolean, data: Uint8Array, s0: number, s1: number): [number, number] {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < data.byteLength; i += 8) {
    s0 = (s0 + v.getUint32(i, !be) + s1) % 2 ** 32;
    s1 = (s1 + v.getUint32(i + 4, !be) + s0) % 2 ** 32;
  }
  return [s0, s1];
}

/** Builds a WAL of `txns` transactions of random pages; returns bytes and commit offsets. */
function buildWal(be: boolean, pageSize: number, txns: number[][], seed: number) {
  const header = { bigEndianChecksum: be, pageSize, checkpointSeq: 3, salt1: seed >>> 0, salt2: (seed * 7) >>> 0 };
  const head = encodeWalHeader(header);
  const parsed = parseWalHeader(head);
  let chain: [number, number] = [parsed.checksum1, parsed.checksum2];
  const parts: Uint8Array[] = [head];
  const commits: number[] = [];
  let offset = WAL_HEADER_SIZE;
  let x = seed;
  for (const pages of txns) {
    pages.forEach((pgno, i) => {
      const page = new Uint8Array(pageSize).map(() => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24));
      const r = encodeWalFrame(header, pgno, i === pages.length - 1 ? Math.max(...pages) : 0, page, chain);
      chain = r.chain;
      parts.push(r.frame);
      offset += r.frame.length;
    });
    commits.push(offset);
  }
  return { bytes: Buffer.concat(parts), commits };
}

describe('WAL checksums', () => {
  it('match a word-by-word reference in both byte orders and at any alignment (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 512 }).map((a) => a.subarray(0, a.length - (a.length % 8))),
        fc.boolean(),
        fc.integer({ min: 0, max: 3 }),
        fc.nat(),
        fc.nat(),
        (data, be, shift, s0, s1) => {
          const shifted = new Uint8Array(data.length + shift).subarray(shift);
          shifted.set(data);
          expect(walChecksum(be, shifted, s0, s1)).toEqual(referenceChecksum(be, data, s0 >>> 0, s1 >>> 0));
        },
      ),
    );
  });

  it('verifies the header checksum and rejects bad headers with a typed error', () => {
    const head = encodeWalHeader({ bigEndianChecksum: false, pageSize: 4096, checkpointSeq: 0, salt1: 1, salt2: 2 });
    expect(parseWalHeader(head).pageSize).toBe(4096);
    for (const at of [0, 5, 9, 17, 25]) {
      const bad = Buffer.from(head);
      bad[at]! ^= 0x10;
      expect(() => parseWalHeader(bad)).toThrow(WalFormatError);
    }
    expect(() => parseWalHeader(head.subarray(0, 31))).toThrow(WalFormatError);
  });

  it('frameAlign rounds down to frame boundaries', () => {
    expect(frameAlign(0, 4096)).toBe(0);
    expect(frameAlign(31, 4096)).toBe(0);
    expect(frameAlign(32, 4096)).toBe(32);
    expect(frameAlign(32 + walFrameSize(4096) * 3 + 5, 4096)).toBe(32 + walFrameSize(4096) * 3);
  });
});

describe('WalFrameReader', () => {
  it('reads every frame of a valid WAL and ends at its last commit (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.constantFrom(512, 1024, 4096),
        fc.array(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 6 }),
        fc.nat(),
        async (be, ps, txns, seed) => {
          const { bytes, commits } = buildWal(be, ps, txns, seed);
          const r = await scanWal([bytes]);
          expect(r.stopReason).toBe('end');
          expect(r.lastCommitOffset).toBe(commits.at(-1));
          expect(r.frames).toBe(txns.flat().length);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('stops without error at a torn or corrupted frame, reporting the last whole transaction (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.array(fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 4 }), { minLength: 2, maxLength: 6 }),
        fc.nat(),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.constantFrom('truncate', 'flip', 'salt'),
        async (be, txns, seed, where, how) => {
          const ps = 512;
          const { bytes, commits } = buildWal(be, ps, txns, seed);
          const fs = walFrameSize(ps);
          const frames = (bytes.length - WAL_HEADER_SIZE) / fs;
          const victim = Math.min(frames - 1, Math.floor(where * frames));
          const frameStart = WAL_HEADER_SIZE + victim * fs;
          let input = Buffer.from(bytes);
          if (how === 'truncate') input = input.subarray(0, frameStart + 1 + Math.floor(where * (fs - 2)));
          else if (how === 'flip') input[frameStart + 24 + Math.floor(where * (ps - 1))]! ^= 0x01;
          else input[frameStart + 8]! ^= 0x80;
          const r = await scanWal([input]);
          const expectedCommit = [WAL_HEADER_SIZE, ...commits].filter((c) => c <= frameStart).at(-1);
          expect(r.lastCommitOffset).toBe(expectedCommit);
          expect(r.validOffset).toBe(frameStart);
          expect(r.stopReason).toBe(
            how === 'truncate' ? 'partial-frame' : how === 'flip' ? 'checksum-mismatch' : 'salt-mismatch',
          );
        },
      ),
      { numRuns: 100 },
    );
  });

  it('reads the same frames a chunk at a time as one by one, at any damage, piece size and alignment (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.boolean(),
        fc.constantFrom(512, 1024),
        fc.array(fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 5 }), { minLength: 1, maxLength: 6 }),
        fc.nat(),
        fc.option(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom('truncate', 'flip', 'salt', 'pgno')), { nil: undefined }),
        fc.integer({ min: 1, max: 9000 }),
        fc.integer({ min: 0, max: 3 }),
        async (be, ps, txns, seed, damage, piece, shift) => {
          const { bytes } = buildWal(be, ps, txns, seed);
          let input = Buffer.from(bytes);
          if (damage) {
            const [where, how] = damage;
            const fs = walFrameSize(ps);
            const victim = Math.floor(where * ((input.length - WAL_HEADER_SIZE) / fs - 1));
            const at = WAL_HEADER_SIZE + victim * fs;
            if (how === 'truncate') input = input.subarray(0, at + 1 + Math.floor(where * (fs - 2)));
            else if (how === 'flip') input[at + 24 + Math.floor(where * (ps - 1))]! ^= 0x01;
            else if (how === 'salt') input[at + 12]! ^= 0x80;
            else input.writeUInt32BE(0, at);
          }
          // Pieces at an odd offset in their memory: the word-at-a-time sums cannot be used there.
          const pieces: Buffer[] = [];
          for (let at = 0; at < input.length; at += piece) {
            const part = input.subarray(at, at + piece);
            const holder = Buffer.alloc(part.length + shift);
            part.copy(holder, shift);
            pieces.push(holder.subarray(shift));
          }
          type Seen = [number, number, number];
          const one = new WalFrameReader(pieces);
          const want: Seen[] = [];
          for (let f = await one.next(); f; f = await one.next()) want.push([f.offset, f.pgno, f.commitSize]);
          const batched = new WalFrameReader(pieces);
          const got: Seen[] = [];
          for (;;) {
            const b = batched.bufferedFrames();
            if (b === null) break;
            if (b) {
              for (let k = 0; k < b.count; k++) got.push([b.offset + k * b.frameSize, b.pgnos[k]!, b.commits[k]!]);
              continue;
            }
            const f = await batched.next();
            if (!f) break;
            got.push([f.offset, f.pgno, f.commitSize]);
          }
          expect(got).toEqual(want);
          for (const k of ['stopReason', 'validOffset', 'lastCommitOffset', 'lastCommitSize', 'lastCommitChecksum', 'frames'] as const) {
            expect(batched[k]).toEqual(one[k]);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('resumes in the middle of a real WAL from a known checksum', async () => {
    const t = await tempDir();
    try {
      const db = join(t.dir, 'a.db');
      await writeWithSqlite(db, 'basic');
      const wal = await readFile(`${db}-wal`);
      const first = new WalFrameReader([wal.subarray(0, 40_000)]);
      const header = await first.header();
      while (await first.next());
      const resumed = new WalFrameReader(createReadStream(`${db}-wal`, { start: first.lastCommitOffset }), {
        resume: { offset: first.lastCommitOffset, header, checksum: first.lastCommitChecksum },
      });
      while (await resumed.next());
      const whole = await scanWal([wal]);
      expect(resumed.stopReason).toBe('end');
      expect(resumed.lastCommitOffset).toBe(whole.lastCommitOffset);
      expect(first.frames + resumed.frames).toBeGreaterThanOrEqual(whole.frames);
      // A wrong starting checksum breaks the chain at the first frame.
      const wrong = new WalFrameReader([wal.subarray(first.lastCommitOffset)], {
        resume: { offset: first.lastCommitOffset, header, checksum: [1, 2] },
      });
      expect(await wrong.next()).toBeNull();
      expect(wrong.stopReason).toBe('checksum-mismatch');
      const c = new WalChain(header);
      expect(c.checksum).toEqual([header.checksum1, header.checksum2]);
    } finally {
      await t.cleanup();
    }
  });
});
