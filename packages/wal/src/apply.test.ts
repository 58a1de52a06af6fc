import { createReadStream, readdirSync } from 'node:fs';
import { copyFile, open, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { integrityCheck, sqliteCheckpoint, tempDir, writeWithSqlite } from '../test/helpers.js';
import { WalApplier, applyWal, parseDatabaseHeader } from './apply.js';
import { CorruptDataError, PageSizeMismatchError, WalFormatError } from './errors.js';
import { lendFileChunks, readFileChunks } from './file-chunks.js';
import { WalFrameReader, scanWal } from './wal-reader.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function scenario(name: string, pageSize?: number) {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  const src = join(t.dir, 'src.db');
  await writeWithSqlite(src, name, pageSize);
  // Two copies of the same database + WAL: SQLite checkpoints one, lstream applies the other.
  const expected = join(t.dir, 'expected.db');
  await copyFile(src, expected);
  await copyFile(`${src}-wal`, `${expected}-wal`);
  const ours = join(t.dir, 'ours.db');
  const wal = join(t.dir, 'ours.wal');
  await copyFile(src, ours);
  await copyFile(`${src}-wal`, wal);
  sqliteCheckpoint(expected);
  return { dir: t.dir, expected, ours, wal };
}

/** The WAL offset just past each commit frame. */
async function commitEnds(wal: Buffer): Promise<number[]> {
  const reader = new WalFrameReader([wal]);
  await reader.header();
  const ends: number[] = [];
  for (let f = await reader.next(); f; f = await reader.next()) if (f.commitSize !== 0) ends.push(reader.validOffset);
  return ends;
}

describe('applyWal on WALs written by real SQLite', () => {
  for (const [name, pageSize] of [
    ['basic', undefined],
    ['mixed', undefined],
    ['shrink', undefined],
    ['uncommitted-tail', undefined],
    ['basic', 1024],
    ['mixed', 65536],
  ] as const) {
    it(`gives the bytes SQLite's checkpoint gives: ${name}${pageSize ? ` (page size ${pageSize})` : ''}`, async () => {
      const s = await scenario(name, pageSize);
      const result = await applyWal(s.ours, createReadStream(s.wal, { highWaterMark: 1 << 20 }));
      expect(result.transactions).toBeGreaterThan(0);
      const [ours, expected] = await Promise.all([readFile(s.ours), readFile(s.expected)]);
      expect(ours.length).toBe(expected.length);
      expect(ours.equals(expected)).toBe(true);
      expect(integrityCheck(s.ours)).toBe('ok');
    });
  }

  it('stops at the last commit and leaves uncommitted frames out', async () => {
    const s = await scenario('uncommitted-tail');
    const scan = await scanWal(createReadStream(s.wal));
    // The open transaction spilled frames after the last commit (SQLite rewrites their checksums only
    // at commit, so the chain breaks there).
    expect((await readFile(s.wal)).length).toBeGreaterThan(scan.lastCommitOffset + 100_000);
    const result = await applyWal(s.ours, createReadStream(s.wal));
    expect(result.walBytes).toBe(scan.lastCommitOffset);
    await expect(applyWal(s.ours, createReadStream(s.wal), { strict: true })).rejects.toBeInstanceOf(WalFormatError);
  });

  it('applies a WAL with a tiny buffer, spilling large transactions, and leaves no spill file', async () => {
    const s = await scenario('mixed');
    // Tiny buffer: every transaction larger than 64 KiB goes through the spill file.
    const applier = await WalApplier.open(s.ours, { bufferBytes: 64 * 1024 });
    const r = await applier.apply(createReadStream(s.wal, { highWaterMark: 4096 }));
    await applier.close();
    expect(r.pageCount * r.header.pageSize).toBe((await readFile(s.expected)).length);
    expect((await readFile(s.ours)).equals(await readFile(s.expected))).toBe(true);
    const leftovers = (await import('node:fs/promises')).readdir(s.dir);
    expect((await leftovers).filter((f) => f.includes('lstream-apply'))).toEqual([]);
  });

  it('keeps nothing from a chunk once it asks for the next, so a source may refill one buffer', async () => {
    const s = await scenario('mixed');
    const wal = await readFile(s.wal);
    // One buffer, overwritten with the next piece as soon as the applier asks for it. Pieces of
    // 5,000 bytes split frames and transactions; an applier that kept a view into an earlier piece
    // would write the bytes of a later one.
    async function* oneBuffer(): AsyncGenerator<Buffer> {
      const buf = Buffer.alloc(5000);
      for (let at = 0; at < wal.length; at += buf.length) {
        const n = wal.copy(buf, 0, at, Math.min(at + buf.length, wal.length));
        yield buf.subarray(0, n);
        buf.fill(0xee);
      }
    }
    for (const bufferBytes of [64 * 1024, undefined]) {
      const out = join(s.dir, `one-buffer-${bufferBytes ?? 'default'}.db`);
      await copyFile(join(s.dir, 'src.db'), out);
      const applier = await WalApplier.open(out, { bufferBytes, strict: true });
      await applier.apply(oneBuffer());
      await applier.close();
      expect((await readFile(out)).equals(await readFile(s.expected))).toBe(true);
    }
    // readFileChunks refills each chunk's memory after the next is asked for.
    const viaChunks = join(s.dir, 'via-chunks.db');
    await copyFile(join(s.dir, 'src.db'), viaChunks);
    await applyWal(viaChunks, readFileChunks(s.wal, { chunkBytes: 7000 }), { strict: true, bufferBytes: 128 * 1024 });
    expect((await readFile(viaChunks)).equals(await readFile(s.expected))).toBe(true);
    expect(integrityCheck(viaChunks)).toBe('ok');
  });

  it('keeps pages in place in lent chunks, gives every chunk back, and gives the bytes SQLite gives', async () => {
    const s = await scenario('mixed');
    for (const [chunkBytes, bufferBytes] of [
      [4 << 20, undefined],
      [7000, 64 * 1024],
      [100_000, 256 * 1024],
      [997, 8 * 1024],
    ] as const) {
      const out = join(s.dir, `lent-${chunkBytes}-${bufferBytes}.db`);
      await copyFile(join(s.dir, 'src.db'), out);
      const src = lendFileChunks(s.wal, { chunkBytes });
      // Every chunk given back is poisoned: the applier must not read one after giving it back.
      const out_ = new Set<Uint8Array>();
      let wrong = 0;
      const counted = (async function* () {
        for await (const c of src.chunks) {
          out_.add(c);
          yield c;
        }
      })();
      const release = (c: Uint8Array) => {
        if (!out_.delete(c)) wrong++;
        c.fill(0xee);
        src.release(c);
      };
      const applier = await WalApplier.open(out, { strict: true, bufferBytes });
      await applier.apply(counted, { release });
      await applier.close();
      expect(wrong).toBe(0);
      expect(out_.size).toBe(0);
      expect((await readFile(out)).equals(await readFile(s.expected))).toBe(true);
      expect(integrityCheck(out)).toBe('ok');
    }
  });

  it('counts the whole memory a lent chunk holds against its buffer, not just the chunk', async () => {
    const s = await scenario('mixed');
    const wal = await readFile(s.wal);
    // Pieces of 5,000 bytes, each alone in 64 KiB of memory (as a small WAL segment decoded into a
    // large block buffer): a 256 KiB buffer holds four such pieces, not fifty.
    const out = new Set<Uint8Array>();
    let most = 0;
    const pieces = async function* () {
      for (let at = 0; at < wal.length; at += 5000) {
        const memory = Buffer.alloc(64 * 1024);
        const n = wal.copy(memory, 0, at, Math.min(at + 5000, wal.length));
        const c = memory.subarray(0, n);
        out.add(c);
        most = Math.max(most, out.size);
        yield c;
      }
    };
    const applier = await WalApplier.open(s.ours, { strict: true, bufferBytes: 256 * 1024 });
    await applier.apply(pieces(), { release: (c) => out.delete(c) });
    await applier.close();
    expect(out.size).toBe(0);
    expect(most).toBeLessThanOrEqual(4 + 2);
    expect((await readFile(s.ours)).equals(await readFile(s.expected))).toBe(true);
  });

  it('gives back every lent chunk when a WAL is corrupt and the applier is aborted', async () => {
    const s = await scenario('mixed');
    const wal = await readFile(s.wal);
    const corrupt = Buffer.from(wal);
    corrupt[wal.length - 100]! ^= 0xff;
    const lent = new Set<Uint8Array>();
    const pieces = async function* () {
      for (let at = 0; at < corrupt.length; at += 5000) {
        const c = Buffer.from(corrupt.subarray(at, at + 5000));
        lent.add(c);
        yield c;
      }
    };
    const applier = await WalApplier.open(s.ours, { strict: true });
    await expect(applier.apply(pieces(), { release: (c) => lent.delete(c) })).rejects.toBeInstanceOf(WalFormatError);
    // Committed pages before the damage are still held, in place, for a later apply or close.
    expect(lent.size).toBeGreaterThan(0);
    await applier.abort();
    expect(lent.size).toBe(0);
  });

  it('writes through (writeThrough): the bytes SQLite gives, from lent, refilled and streamed sources', async () => {
    for (const [name, pageSize] of [
      ['basic', undefined],
      ['mixed', undefined],
      ['shrink', undefined],
      ['basic', 1024],
      ['mixed', 65536],
    ] as const) {
      const s = await scenario(name, pageSize);
      const expected = await readFile(s.expected);
      const wal = await readFile(s.wal);
      // Lent chunks, poisoned as soon as they are given back: a write still reading one would
      // put 0xee bytes in the file.
      for (const chunkBytes of [4 << 20, 7000, 997]) {
        const out = join(s.dir, `through-lent-${chunkBytes}.db`);
        await copyFile(join(s.dir, 'src.db'), out);
        const src = lendFileChunks(s.wal, { chunkBytes });
        const held = new Set<Uint8Array>();
        let wrong = 0;
        const counted = (async function* () {
          for await (const c of src.chunks) {
            held.add(c);
            yield c;
          }
        })();
        const applier = await WalApplier.open(out, { writeThrough: true });
        const r = await applier.apply(counted, {
          release: (c) => {
            if (!held.delete(c)) wrong++;
            c.fill(0xee);
            src.release(c);
          },
        });
        await applier.close();
        expect(r.transactions).toBeGreaterThan(0);
        expect(r.walBytes).toBe(wal.length);
        expect([wrong, held.size]).toEqual([0, 0]);
        expect((await readFile(out)).equals(expected), `${name} ${pageSize} lent ${chunkBytes}`).toBe(true);
      }
      // One buffer refilled (and poisoned) the moment the applier asks for more.
      const refilled = join(s.dir, 'through-refilled.db');
      await copyFile(join(s.dir, 'src.db'), refilled);
      const oneBuffer = async function* () {
        const buf = Buffer.alloc(5000);
        for (let at = 0; at < wal.length; at += buf.length) {
          const n = wal.copy(buf, 0, at, Math.min(at + buf.length, wal.length));
          yield buf.subarray(0, n);
          buf.fill(0xee);
        }
      };
      await applyWal(refilled, oneBuffer(), { writeThrough: true });
      expect((await readFile(refilled)).equals(expected)).toBe(true);
      const streamed = join(s.dir, 'through-streamed.db');
      await copyFile(join(s.dir, 'src.db'), streamed);
      await applyWal(streamed, createReadStream(s.wal, { highWaterMark: 1 << 20 }), { writeThrough: true });
      expect((await readFile(streamed)).equals(expected)).toBe(true);
      expect(integrityCheck(streamed)).toBe('ok');
    }
  });

  it('writes through: a corrupt frame inside a transaction throws, and the applier, holding part of it, can only be aborted', async () => {
    const m = await scenario('mixed');
    const wal = Buffer.from(await readFile(m.wal));
    // A byte of the second frame of a transaction of three frames or more.
    const frameSize = wal.readUInt32BE(8) + 24;
    const ends = await commitEnds(wal);
    const k = ends.findIndex((end, i) => i > 0 && end - ends[i - 1]! >= 3 * frameSize);
    expect(k).toBeGreaterThan(0);
    wal[ends[k - 1]! + frameSize + 24 + 100]! ^= 0xff;
    const out = join(m.dir, 'through-bad.db');
    await copyFile(join(m.dir, 'src.db'), out);
    const lent = new Set<Uint8Array>();
    const pieces = async function* () {
      for (let at = 0; at < wal.length; at += 5000) {
        const c = Buffer.from(wal.subarray(at, at + 5000));
        lent.add(c);
        yield c;
      }
    };
    const applier = await WalApplier.open(out, { writeThrough: true });
    await expect(applier.apply(pieces(), { release: (c) => lent.delete(c) })).rejects.toBeInstanceOf(WalFormatError);
    expect(lent.size).toBe(0);
    await expect(applier.apply([wal])).rejects.toThrow(/part of a transaction the WAL did not complete was written through; the file is incomplete/);
    await expect(applier.close()).rejects.toThrow(/the file is incomplete/);
    await applier.abort();
  });

  it('writes through: an uncommitted tail SQLite left (its chain broken at its first frame) throws, and nothing of it is in the file', async () => {
    const s = await scenario('uncommitted-tail');
    const applier = await WalApplier.open(s.ours, { writeThrough: true });
    await expect(applier.apply(lendFileChunks(s.wal, { chunkBytes: 5000 }).chunks)).rejects.toBeInstanceOf(WalFormatError);
    await applier.close();
    expect((await readFile(s.ours)).equals(await readFile(s.expected))).toBe(true);
  });

  it('writes through: a source failing between two transactions leaves every one before; failing inside one, the file is incomplete', async () => {
    const s = await scenario('mixed');
    const wal = await readFile(s.wal);
    const commits = await commitEnds(wal);
    expect(commits.length).toBeGreaterThan(3);
    const failingAt = (cut: number) =>
      (async function* () {
        yield wal.subarray(0, cut);
        throw new Error('download failed');
      })();
    const cut = commits.at(-2)!;
    const out = join(s.dir, 'through-cut.db');
    await copyFile(join(s.dir, 'src.db'), out);
    const applier = await WalApplier.open(out, { writeThrough: true });
    await expect(applier.apply(failingAt(cut))).rejects.toThrow('download failed');
    await applier.close();
    // What applying exactly the transactions before the cut gives.
    const ref = join(s.dir, 'through-cut-ref.db');
    await copyFile(join(s.dir, 'src.db'), ref);
    await applyWal(ref, [wal.subarray(0, cut)], { strict: true });
    expect((await readFile(out)).equals(await readFile(ref))).toBe(true);
    expect(integrityCheck(out)).toBe('ok');

    // Halfway through the last transaction, after some of its frames.
    const frameSize = wal.readUInt32BE(8) + 24;
    const lastFrames = (commits.at(-1)! - commits.at(-2)!) / frameSize;
    expect(lastFrames).toBeGreaterThan(2);
    const inside = join(s.dir, 'through-inside.db');
    await copyFile(join(s.dir, 'src.db'), inside);
    const broken = await WalApplier.open(inside, { writeThrough: true });
    await expect(broken.apply(failingAt(commits.at(-2)! + Math.floor(lastFrames / 2) * frameSize + 100))).rejects.toThrow('download failed');
    await expect(broken.close()).rejects.toThrow(/the file is incomplete/);
  });

  it('stops an apply when the applier is aborted meanwhile, giving back every chunk and leaving no spill file', async () => {
    const s = await scenario('mixed');
    const wal = await readFile(s.wal);
    for (const bufferBytes of [undefined, 16 * 1024]) {
      const out = join(s.dir, `aborted-${bufferBytes}.db`);
      await copyFile(join(s.dir, 'src.db'), out);
      const lent = new Set<Uint8Array>();
      let resume!: () => void;
      const paused = new Promise<void>((r) => (resume = r));
      let yielded = 0;
      const pieces = async function* () {
        for (let at = 0; at < wal.length; at += 5000) {
          if (++yielded === 20) await paused;
          const c = Buffer.from(wal.subarray(at, at + 5000));
          lent.add(c);
          yield c;
        }
      };
      const applier = await WalApplier.open(out, { bufferBytes });
      const applying = applier.apply(pieces(), { release: (c) => lent.delete(c) });
      while (yielded < 20) await new Promise((r) => setImmediate(r));
      // A second apply, or close, while one runs: refused, and nothing is taken from their streams.
      await expect(applier.apply([wal])).rejects.toThrow(/already running/);
      await expect(applier.close()).rejects.toThrow(/while apply\(\) is running/);
      const aborting = applier.abort();
      resume();
      await expect(applying).rejects.toThrow(/aborted/);
      await aborting;
      expect(lent.size).toBe(0);
      expect((await readdir(s.dir)).filter((f) => f.includes('lstream-apply'))).toEqual([]);
      await expect(applier.apply([wal])).rejects.toThrow(/closed/);
    }
  });

  it('does not hang when the source itself aborts the applier, and gives back every chunk', async () => {
    const s = await scenario('mixed');
    const wal = await readFile(s.wal);
    const lent = new Set<Uint8Array>();
    const applier = await WalApplier.open(s.ours, { bufferBytes: 16 * 1024 });
    const pieces = async function* () {
      for (let at = 0, n = 0; at < wal.length; at += 5000, n++) {
        // A source that cleans up the applier before failing (as a download error handler might).
        if (n === 30) {
          await applier.abort();
          throw new Error('download failed');
        }
        const c = Buffer.from(wal.subarray(at, at + 5000));
        lent.add(c);
        yield c;
      }
    };
    await expect(applier.apply(pieces(), { release: (c) => lent.delete(c) })).rejects.toThrow('download failed');
    expect(lent.size).toBe(0);
    // A second abort and a close after it return at once.
    await applier.abort();
    await applier.close();
    expect((await readdir(s.dir)).filter((f) => f.includes('lstream-apply'))).toEqual([]);
  });

  it('reads frames from chunks of 2 GiB and more, and from views into 4 GiB of memory', async () => {
    const s = await scenario('basic');
    const wal = await readFile(s.wal);
    const expected = await readFile(s.expected);
    // The WAL, then an invalid frame header, at the start of memory that is mostly never touched.
    for (const [memory, chunk] of [
      [2 ** 31 + 100, 2 ** 31 + 100],
      [2 ** 32, wal.length + 100_000],
    ] as [number, number][]) {
      const big = Buffer.allocUnsafeSlow(memory);
      wal.copy(big, 0);
      big.fill(0, wal.length, wal.length + 64);
      const out = join(s.dir, `big-${memory}.db`);
      await copyFile(join(s.dir, 'src.db'), out);
      const r = await applyWal(out, [big.subarray(0, chunk)]);
      expect(r.stopReason).toBe('salt-mismatch');
      expect((await readFile(out)).equals(expected)).toBe(true);
    }
  }, 60_000);

  it('refuses a WAL whose page size differs from the database', async () => {
    const a = await scenario('basic', 1024);
    const b = await scenario('basic', 4096);
    const before = await readFile(b.ours);
    const err = await applyWal(b.ours, createReadStream(a.wal)).catch((e) => e);
    expect(err).toBeInstanceOf(PageSizeMismatchError);
    expect((await readFile(b.ours)).equals(before)).toBe(true);
  });

  it('rejects a file that is not a SQLite database', async () => {
    const s = await scenario('basic');
    const bogus = join(s.dir, 'bogus.db');
    await writeFile(bogus, Buffer.alloc(4096, 1));
    await expect(applyWal(bogus, createReadStream(s.wal))).rejects.toBeInstanceOf(CorruptDataError);
  });

  it('stops quietly at a corrupted frame, and strict mode reports it', async () => {
    const s = await scenario('basic');
    const wal = await readFile(s.wal);
    const scan = await scanWal([wal]);
    // Flip one byte in the middle of the WAL's frames.
    const corrupt = Buffer.from(wal);
    const at = Math.floor(scan.lastCommitOffset / 2);
    corrupt[at] = corrupt[at]! ^ 0xff;
    const r = await applyWal(s.ours, [corrupt]);
    expect(r.walBytes).toBeLessThan(scan.lastCommitOffset);
    expect(r.stopReason).toBe('checksum-mismatch');
    expect(integrityCheck(s.ours)).toBe('ok');
    const copy = join(s.dir, 'copy.db');
    await rename(s.expected, copy);
    await expect(applyWal(copy, [corrupt], { strict: true })).rejects.toBeInstanceOf(WalFormatError);
  });
});

/** A file of 100,003 bytes of a pattern set by `k`, in a directory removed after the test. */
async function patternFile(k: number): Promise<{ dir: string; path: string; data: Buffer }> {
  const t = await tempDir();
  cleanups.push(t.cleanup);
  const path = join(t.dir, 'data.bin');
  const data = Buffer.from(Array.from({ length: 100_003 }, (_, i) => (i * k + (i >> 8)) & 0xff));
  await writeFile(path, data);
  return { dir: t.dir, path, data };
}

describe('lendFileChunks', () => {
  it('yields the bytes of the file, reuses only chunks given back, and ignores anything else', async () => {
    const { dir, path, data } = await patternFile(13);
    // Held: every chunk is new memory, and the bytes come out whole.
    const held = lendFileChunks(path, { chunkBytes: 4096 });
    const kept: Buffer[] = [];
    for await (const c of held.chunks) kept.push(c);
    expect(Buffer.concat(kept).equals(data)).toBe(true);
    expect(new Set(kept.map((c) => c.buffer)).size).toBe(kept.length);
    // Given back at once: memory is reused, and what was read stays right.
    const lent = lendFileChunks(path, { start: 5, end: 90_005, chunkBytes: 8192 });
    const parts: Buffer[] = [];
    const memory = new Set<ArrayBufferLike>();
    for await (const c of lent.chunks) {
      parts.push(Buffer.from(c));
      memory.add(c.buffer);
      lent.release(c);
      lent.release(c); // twice: ignored
      lent.release(Buffer.alloc(8192)); // not lent: ignored
    }
    expect(Buffer.concat(parts).equals(data.subarray(5, 90_005))).toBe(true);
    // One chunk read ahead while the caller holds the other.
    expect(memory.size).toBe(2);
    await expect(lendFileChunks(path, { chunkBytes: -1 }).chunks.next()).rejects.toBeInstanceOf(RangeError);
    await expect(lendFileChunks(join(dir, 'missing')).chunks.next()).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('parseDatabaseHeader', () => {
  it('reads the page size and the valid page count of databases SQLite wrote, and nothing else', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      for (const pageSize of [512, 4096, 65_536]) {
        const path = join(dir, `h-${pageSize}.db`);
        const db = new Database(path);
        db.pragma(`page_size = ${pageSize}`);
        db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (randomblob(3000)), (randomblob(3000));');
        const pages = db.pragma('page_count', { simple: true }) as number;
        db.close();
        const file = await readFile(path);
        expect(parseDatabaseHeader(file)).toEqual({ pageSize, pageCount: pages });
        // A count the header does not vouch for (version-valid-for differs from the change counter).
        const stale = Buffer.from(file.subarray(0, 100));
        stale.writeUInt32BE(stale.readUInt32BE(24) + 1, 24);
        expect(parseDatabaseHeader(stale)).toEqual({ pageSize, pageCount: undefined });
        expect(parseDatabaseHeader(file.subarray(0, 99))).toBeUndefined();
      }
      expect(parseDatabaseHeader(Buffer.alloc(100))).toBeUndefined();
    } finally {
      await cleanup();
    }
  });
});

describe('readFileChunks', () => {
  it('yields exactly the bytes of the file or of a range, at any chunk size', async () => {
    const { dir, path, data } = await patternFile(7);
    const collect = async (it: AsyncIterable<Buffer>) => {
      const parts: Buffer[] = [];
      for await (const c of it) parts.push(Buffer.from(c));
      return Buffer.concat(parts);
    };
    for (const chunkBytes of [1, 4096, 65_536, 100_003, 1 << 20]) {
      expect((await collect(readFileChunks(path, { chunkBytes: chunkBytes === 1 ? 997 : chunkBytes }))).equals(data)).toBe(true);
    }
    expect((await collect(readFileChunks(path, { start: 10, end: 50_010, chunkBytes: 4096 }))).equals(data.subarray(10, 50_010))).toBe(true);
    expect((await collect(readFileChunks(path, { start: 100_003 }))).length).toBe(0);
    // Stopping early closes the file (the generator's return ends the read-ahead first).
    for await (const c of readFileChunks(path, { chunkBytes: 4096 })) {
      expect(c.length).toBe(4096);
      break;
    }
    await expect(collect(readFileChunks(join(dir, 'missing')))).rejects.toMatchObject({ code: 'ENOENT' });
    // No file stays open after the consumer stops early, or fails while a read-ahead is in flight.
    const openFiles = () => readdirSync('/proc/self/fd').length;
    const before = openFiles();
    for (let i = 0; i < 20; i++) {
      for await (const c of readFileChunks(path, { chunkBytes: 4096 })) {
        void c;
        break;
      }
      await expect(
        (async () => {
          for await (const c of readFileChunks(path, { chunkBytes: 4096 })) if (c.length > 0) throw new Error('consumer failed');
        })(),
      ).rejects.toThrow('consumer failed');
    }
    expect(openFiles()).toBe(before);
    await expect(collect(readFileChunks(path, { chunkBytes: 0 }))).rejects.toBeInstanceOf(RangeError);
  });

  it('reads an open file handle at explicit positions and leaves it open, whether read to the end or stopped early', async () => {
    const { path, data } = await patternFile(7);
    const fh = await open(path, 'r');
    try {
      const parts: Buffer[] = [];
      for await (const c of readFileChunks(fh, { chunkBytes: 4096 })) parts.push(Buffer.from(c));
      expect(Buffer.concat(parts).equals(data)).toBe(true);
      for await (const c of readFileChunks(fh, { chunkBytes: 4096, start: 5 })) {
        expect(c.equals(data.subarray(5, 4101))).toBe(true);
        break;
      }
      const lent = lendFileChunks(fh, { start: 100, end: 300 });
      for await (const c of lent.chunks) {
        expect(c.equals(data.subarray(100, 300))).toBe(true);
        lent.release(c);
      }
      // Still open: it reads again, from the start.
      const { bytesRead } = await fh.read(Buffer.alloc(8), 0, 8, 0);
      expect(bytesRead).toBe(8);
    } finally {
      await fh.close();
    }
  });
});
