import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { tempDir } from '../test/helpers.js';
import { WalApplier } from './apply.js';
import { WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, encodeWalFrame, encodeWalHeader, parseWalHeader } from './wal-format.js';

// WalApplier against a model of what a checkpoint must produce, on WALs built here frame by frame:
// small page caches (so transactions spill and flushes happen mid-transaction), several WALs per
// applier, damaged frames, uncommitted tails, and sources that refill one buffer or fail partway.

interface Txn {
  pgnos: number[];
  /** Database size in pages recorded by the commit frame; undefined: the WAL ends in this open transaction. */
  commitSize: number | undefined;
}

interface WalSpec {
  txns: Txn[];
  /** Index of a frame whose checksum is broken (the chain stops there). */
  corruptAt?: number;
  bigEndian?: boolean;
  /** Bytes per piece the source yields from its one buffer. */
  piece: number;
  /** The source fails before yielding a piece that would pass this offset. */
  throwAt?: number;
}

let tag = 0;
function page(ps: number): Buffer {
  const p = Buffer.alloc(ps);
  const t = ++tag;
  for (let i = 0; i < ps; i += 4) p.writeUInt32LE((t * 2654435761 + i * 40503) >>> 0, i);
  return p;
}

/** Builds the WAL bytes and the page image of every frame. */
function buildWal(ps: number, spec: WalSpec, salt: number): { wal: Buffer; images: Buffer[] } {
  const header = { bigEndianChecksum: spec.bigEndian ?? false, pageSize: ps, checkpointSeq: 1, salt1: salt, salt2: salt ^ 0x5a5a };
  const head = encodeWalHeader(header);
  const parsed = parseWalHeader(head);
  let chain: [number, number] = [parsed.checksum1, parsed.checksum2];
  const parts = [Buffer.from(head)];
  const images: Buffer[] = [];
  for (const t of spec.txns) {
    t.pgnos.forEach((pgno, i) => {
      const img = page(ps);
      const last = i === t.pgnos.length - 1;
      const r = encodeWalFrame(header, pgno, last && t.commitSize !== undefined ? t.commitSize : 0, img, chain);
      chain = r.chain;
      const frame = Buffer.from(r.frame);
      if (images.length === spec.corruptAt) frame[WAL_FRAME_HEADER_SIZE + 6]! ^= 0xff;
      parts.push(frame);
      images.push(img);
    });
  }
  return { wal: Buffer.concat(parts), images };
}

/** A source that refills and poisons one buffer, and optionally fails partway. */
function oneBuffer(wal: Buffer, piece: number, throwAt = Infinity): AsyncGenerator<Buffer> {
  return (async function* () {
    const buf = Buffer.alloc(piece);
    for (let at = 0; at < wal.length; at += piece) {
      if (at + piece > throwAt) throw new Error('source failed');
      const n = wal.copy(buf, 0, at, Math.min(at + piece, wal.length));
      yield buf.subarray(0, n);
      buf.fill(0xee);
    }
  })();
}

/**
 * A source that lends its pieces (WalApplyStreamOptions.release): each piece is a buffer of its own,
 * poisoned when given back and reused for a later piece, so a page read after its release shows.
 * Counts what is out, and fails the test on a release of something not lent or lent back already.
 */
class LendingSource {
  readonly #spares: Buffer[] = [];
  /** Each piece out: the view lent, and the buffer it is in. */
  readonly #out = new Map<Uint8Array, Buffer>();
  outBytes = 0;
  maxOutBytes = 0;
  lent = 0;
  readonly errors: string[] = [];

  chunks(wal: Buffer, piece: number, throwAt = Infinity): AsyncGenerator<Buffer> {
    const out = this.#out;
    const spares = this.#spares;
    return (async function* (this: LendingSource) {
      for (let at = 0; at < wal.length; at += piece) {
        if (at + piece > throwAt) throw new Error('source failed');
        const n = Math.min(piece, wal.length - at);
        const i = spares.findIndex((b) => b.length >= n);
        const buf = i >= 0 ? spares.splice(i, 1)[0]! : Buffer.alloc(piece);
        wal.copy(buf, 0, at, at + n);
        const view = buf.subarray(0, n);
        out.set(view, buf);
        this.lent++;
        this.outBytes += n;
        this.maxOutBytes = Math.max(this.maxOutBytes, this.outBytes);
        yield view;
      }
    }).call(this);
  }

  readonly release = (chunk: Uint8Array): void => {
    const buf = this.#out.get(chunk);
    if (buf === undefined) {
      this.errors.push(`released a chunk not lent, or twice (${chunk.byteLength} bytes)`);
      return;
    }
    this.#out.delete(chunk);
    this.outBytes -= chunk.byteLength;
    buf.fill(0xee);
    this.#spares.push(buf);
  };

  get outstanding(): number {
    return this.#out.size;
  }
}

/** What the file must hold: the page images of every transaction committed before anything stopped the WAL. */
class Model {
  pages = new Map<number, Buffer>();
  size = 0;
  apply(ps: number, spec: WalSpec, images: Buffer[], walLength: number): void {
    const frameSize = ps + WAL_FRAME_HEADER_SIZE;
    const delivered = spec.throwAt === undefined ? walLength : Math.floor(spec.throwAt / spec.piece) * spec.piece;
    let first = 0;
    for (const t of spec.txns) {
      const end = first + t.pgnos.length;
      if (t.commitSize === undefined) break;
      if (spec.corruptAt !== undefined && spec.corruptAt < end) break;
      if (WAL_HEADER_SIZE + end * frameSize > delivered) break;
      t.pgnos.forEach((pgno, i) => this.pages.set(pgno, images[first + i]!));
      this.size = t.commitSize;
      first = end;
    }
  }
  bytes(ps: number, initial: number): Buffer {
    const size = this.size || initial;
    const out = Buffer.alloc(size * ps);
    for (const [pgno, img] of this.pages) if (pgno <= size) img.copy(out, (pgno - 1) * ps);
    return out;
  }
}

/** Applies `wal` in the spec's pieces, lent by `lender` or from one refilled buffer; resolves with what it threw, if anything. */
function applyFailure(applier: WalApplier, wal: Buffer, spec: WalSpec, lender: LendingSource | undefined): Promise<unknown> {
  const applied = lender
    ? applier.apply(lender.chunks(wal, spec.piece, spec.throwAt), { release: lender.release })
    : applier.apply(oneBuffer(wal, spec.piece, spec.throwAt));
  return applied.then(
    () => undefined,
    (e: unknown) => e,
  );
}

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir, cleanup } = await tempDir()));
afterAll(() => cleanup());

let run = 0;
/** Applies `wals` with one applier and returns what the file holds, what the model says, and the slabs allocated. */
async function applyAll(ps: number, bufferBytes: number, wals: WalSpec[], lend = false) {
  const path = join(dir, `db-${++run}`);
  await writeFile(path, Buffer.alloc(0));
  const model = new Model();
  const slab = ps * 256;
  const alloc = vi.spyOn(Buffer, 'allocUnsafeSlow');
  const lender = new LendingSource();
  let slabs = 0;
  let outAfterApply = 0;
  try {
    const applier = await WalApplier.open(path, { bufferBytes, fsync: false });
    for (const [w, spec] of wals.entries()) {
      const { wal, images } = buildWal(ps, spec, 1000 + w);
      model.apply(ps, spec, images, wal.length);
      const err = await applyFailure(applier, wal, spec, lend ? lender : undefined);
      if (err !== undefined && !(err instanceof Error && err.message === 'source failed')) throw err;
    }
    slabs = alloc.mock.calls.filter(([n]) => n === slab).length;
    outAfterApply = lender.outstanding;
    await applier.close();
  } finally {
    alloc.mockRestore();
  }
  const leftovers = (await readdir(dir)).filter((f) => f.includes('lstream-apply'));
  return { got: await readFile(path), want: model.bytes(ps, 0), slabs, leftovers, lender, outAfterApply };
}

/**
 * Applies `wals` with one writeThrough applier, up to the first that fails, and checks the outcome:
 * a file equal to the model when nothing of an incomplete transaction reached it, else an applier
 * that refuses to close. Every lent piece must be back by the time each apply settles.
 */
async function applyThrough(ps: number, wals: WalSpec[], lend: boolean): Promise<void> {
  const path = join(dir, `through-${++run}`);
  await writeFile(path, Buffer.alloc(0));
  const model = new Model();
  const lender = new LendingSource();
  const frameSize = ps + WAL_FRAME_HEADER_SIZE;
  const applier = await WalApplier.open(path, { writeThrough: true, fsync: false });
  let partial = false;
  for (const [w, spec] of wals.entries()) {
    const { wal, images } = buildWal(ps, spec, 2000 + w);
    model.apply(ps, spec, images, wal.length);
    const delivered = spec.throwAt === undefined ? wal.length : Math.min(wal.length, Math.floor(spec.throwAt / spec.piece) * spec.piece);
    const frames = images.length;
    // Frames that reach the applier whole and continue the chain; the last commit among them.
    const valid = Math.min(spec.corruptAt ?? frames, Math.max(0, Math.floor((delivered - WAL_HEADER_SIZE) / frameSize)), frames);
    let committed = 0;
    let end = 0;
    for (const t of spec.txns) {
      end += t.pgnos.length;
      if (end > valid) break;
      if (t.commitSize !== undefined) committed = end;
    }
    const damaged = delivered < wal.length || spec.corruptAt !== undefined || spec.txns.at(-1)!.commitSize === undefined;
    const err = await applyFailure(applier, wal, spec, lend ? lender : undefined);
    expect(lender.outstanding).toBe(0);
    if (!damaged) {
      expect(err).toBeUndefined();
      continue;
    }
    expect(err).toBeInstanceOf(Error);
    partial = valid > committed;
    break;
  }
  if (partial) {
    await expect(applier.close()).rejects.toThrow(/the file is incomplete/);
    await applier.abort();
  } else {
    await applier.close();
    const got = await readFile(path);
    const want = model.bytes(ps, 0);
    expect(got.length).toBe(want.length);
    expect(got.equals(want)).toBe(true);
  }
  expect(lender.errors).toEqual([]);
  expect(lender.outstanding).toBe(0);
}

/** A WAL as the properties generate it: offsets and sizes still to be fitted to the WAL built. */
interface GeneratedWal {
  txns: { pgnos: number[]; size: number | undefined }[];
  lastOpen: boolean;
  corruptAt: number | undefined;
  bigEndian: boolean;
  piece: number;
  throwAt: number | undefined;
}

/** The specs of generated WALs: damage and failure offsets brought within each WAL. */
function specsFrom(ps: number, wals: GeneratedWal[]): WalSpec[] {
  return wals.map((w) => {
    const txns: Txn[] = w.txns.map((t, i) => ({
      pgnos: t.pgnos,
      // Only a WAL's last transaction may lack its commit frame (frames before a commit all belong to it).
      commitSize: i === w.txns.length - 1 && w.lastOpen ? undefined : (t.size ?? Math.max(...t.pgnos)),
    }));
    const frames = txns.reduce((a, t) => a + t.pgnos.length, 0);
    const walLength = WAL_HEADER_SIZE + frames * (ps + WAL_FRAME_HEADER_SIZE);
    return {
      txns,
      corruptAt: w.corruptAt === undefined ? undefined : w.corruptAt % frames,
      bigEndian: w.bigEndian,
      piece: w.piece,
      throwAt: w.throwAt === undefined ? undefined : w.throwAt % (walLength + 1),
    };
  });
}

const commit = (pgnos: number[], size = Math.max(...pgnos)): Txn => ({ pgnos, commitSize: size });
const open = (pgnos: number[]): Txn => ({ pgnos, commitSize: undefined });

describe('WalApplier against a model', () => {
  it('leaves out the open transaction a WAL ends with, when a later WAL is applied', async () => {
    const r = await applyAll(512, 1 << 20, [
      { txns: [commit([1]), open([2])], piece: 4096 },
      { txns: [commit([3])], piece: 4096 },
    ]);
    expect(r.got.equals(r.want)).toBe(true);
    expect(r.got.subarray(512, 1024).equals(Buffer.alloc(512))).toBe(true);
  });

  it('keeps the last image of a page spilled twice in one transaction', async () => {
    const r = await applyAll(512, 2 * 512, [{ txns: [commit([1, 2, 1, 3, 4, 5])], piece: 700 }]);
    expect(r.got.equals(r.want)).toBe(true);
  });

  it('spills to a file that has no name while it is used, so a process killed meanwhile leaves nothing', async () => {
    const path = join(dir, `db-${++run}`);
    await writeFile(path, Buffer.alloc(0));
    const applier = await WalApplier.open(path, { bufferBytes: 2 * 512, fsync: false });
    const { wal } = buildWal(512, { txns: [commit([1, 2, 3, 4, 5, 6, 7, 8])], piece: 512 }, 7);
    // What the directory holds while the applier waits for the transaction's last frame, its first
    // seven pages having gone to the spill file (two fit in memory).
    let during: string[] = [];
    const source = (async function* () {
      const cut = wal.length - 600;
      yield wal.subarray(0, cut);
      during = await readdir(dir);
      yield wal.subarray(cut);
    })();
    await applier.apply(source);
    await applier.close();
    expect(during.filter((f) => f.startsWith(`db-${run}`))).toEqual([`db-${run}`]);
    expect((await readFile(path)).length).toBe(8 * 512);
  });

  it('forgets a spilled transaction its source failed in, and applies the next WAL', async () => {
    const txns = [commit([1]), open([2, 3, 4])];
    const first = buildWal(512, { txns, piece: 1 }, 1).wal;
    const r = await applyAll(512, 2 * 512, [
      { txns, piece: 600, throwAt: first.length },
      { txns: [commit([5])], piece: 600 },
    ]);
    expect(r.got.equals(r.want)).toBe(true);
    expect(r.got.subarray(512, 4 * 512).equals(Buffer.alloc(3 * 512))).toBe(true);
  });

  it('moves an open transaction to the first slots without overwriting its own pages', async () => {
    const r = await applyAll(512, 8 * 512, [{ txns: [commit([1, 2]), commit([1, 2]), commit([5, 1, 6, 2, 7, 8, 9])], piece: 333 }]);
    expect(r.got.equals(r.want)).toBe(true);
    // With 8 slots: page 1's second image frees slot 0; in the last transaction, new page 50 takes
    // slot 7 and page 1 takes slot 0, then page 7 finds memory full and the flush moves both down.
    // Taken in frame order, page 50 would land on slot 0 before page 1 had left it.
    const s = await applyAll(512, 8 * 512, [{ txns: [commit([1, 2, 3, 4, 5, 6]), commit([1], 6), commit([50, 1, 7])], piece: 512 }]);
    expect(s.got.equals(s.want)).toBe(true);
  });

  it('stays within its page buffer: commits rewriting a few pages, open tails, transactions larger than memory', async () => {
    // One slab (256 pages) holds every page copy in each case; a slot not freed, or one page too many,
    // would take a second.
    const rewrites = Array.from({ length: 3000 }, (_, i) => commit([1 + (i % 8)], 8));
    const tails = Array.from({ length: 100 }, (): WalSpec => ({ txns: [commit([1]), open([2, 3, 4])], piece: 5000 }));
    const large = Array.from({ length: 3 }, (_, i) => commit(Array.from({ length: 300 }, (_, k) => 1 + ((k * 7 + i) % 400)), 400));
    for (const [bufferBytes, wals] of [
      [16 * 512, [{ txns: rewrites, piece: 64 * 1024 }]],
      [16 * 512, tails],
      [256 * 512, [{ txns: large, piece: 70_000 }]],
    ] as const) {
      const r = await applyAll(512, bufferBytes, [...wals]);
      expect(r.got.equals(r.want)).toBe(true);
      expect(r.slabs).toBe(1);
    }
  });

  it('refuses a buffer size that is not a number of bytes', async () => {
    const path = join(dir, 'bad-options');
    await writeFile(path, Buffer.alloc(0));
    await expect(WalApplier.open(path, { bufferBytes: Number.NaN })).rejects.toBeInstanceOf(RangeError);
    await expect(WalApplier.open(path, { bufferBytes: -1 })).rejects.toBeInstanceOf(RangeError);
  });

  it('gives what the model gives for any WALs, page cache, pieces, damage and failures', async () => {
    const txnArb = (maxPg: number, maxLen: number) =>
      fc.record({
        pgnos: fc.array(fc.integer({ min: 1, max: maxPg }), { minLength: 1, maxLength: maxLen }),
        size: fc.option(fc.integer({ min: 1, max: maxPg + 3 }), { nil: undefined }),
      });
    const scenario = fc
      .record({
        ps: fc.constantFrom(512, 512, 1024, 65_536),
        pages: fc.integer({ min: 0, max: 40 }),
        extra: fc.integer({ min: 0, max: 511 }),
        maxPg: fc.integer({ min: 2, max: 60 }),
        lend: fc.boolean(),
      })
      .chain((s) => {
        const big = s.ps === 65_536;
        const wal = fc.record({
          txns: fc.array(txnArb(big ? 8 : s.maxPg, big ? 6 : 40), { minLength: 1, maxLength: big ? 4 : 10 }),
          lastOpen: fc.boolean(),
          corruptAt: fc.option(fc.nat({ max: 120 }), { nil: undefined }),
          bigEndian: fc.boolean(),
          piece: fc.integer({ min: 1, max: 9000 }),
          throwAt: fc.option(fc.nat({ max: 2_000_000 }), { nil: undefined }),
        });
        return fc.record({ s: fc.constant(s), wals: fc.array(wal, { minLength: 1, maxLength: 3 }) });
      });
    await fc.assert(
      fc.asyncProperty(scenario, async ({ s, wals }) => {
        const specs = specsFrom(s.ps, wals);
        const bufferBytes = s.pages * s.ps + s.extra;
        const r = await applyAll(s.ps, bufferBytes, specs, s.lend);
        expect(r.got.length).toBe(r.want.length);
        expect(r.got.equals(r.want)).toBe(true);
        const maxSlots = Math.max(2, Math.floor(bufferBytes / s.ps));
        expect(r.slabs).toBeLessThanOrEqual(Math.ceil(maxSlots / 256));
        expect(r.leftovers).toEqual([]);
        // Lent pieces: each given back once, all of them by close, and no more held at once than
        // the page buffer allows, past one piece being read and one just left.
        expect(r.lender.errors).toEqual([]);
        expect(r.lender.outstanding).toBe(0);
        const piece = Math.max(...specs.map((w) => w.piece));
        expect(r.lender.maxOutBytes).toBeLessThanOrEqual(Math.max(bufferBytes, 2 * s.ps) + 2 * piece + s.ps);
      }),
      { numRuns: 300 },
    );
  }, 120_000);

  it('writes through (writeThrough) what the model gives, for any WALs, pieces, damage and failures', async () => {
    const scenario = fc
      .record({ ps: fc.constantFrom(512, 1024, 65_536), maxPg: fc.integer({ min: 2, max: 60 }), lend: fc.boolean() })
      .chain((s) => {
        const big = s.ps === 65_536;
        const txn = fc.record({
          pgnos: fc.array(fc.integer({ min: 1, max: big ? 8 : s.maxPg }), { minLength: 1, maxLength: big ? 6 : 40 }),
          size: fc.option(fc.integer({ min: 1, max: (big ? 8 : s.maxPg) + 3 }), { nil: undefined }),
        });
        const wal = fc.record({
          txns: fc.array(txn, { minLength: 1, maxLength: big ? 4 : 10 }),
          // Damage is rarer than in the test above, so runs go on past a first WAL.
          lastOpen: fc.integer({ min: 0, max: 9 }).map((n) => n < 2),
          corruptAt: fc.option(fc.nat({ max: 120 }), { nil: undefined, freq: 3 }),
          bigEndian: fc.boolean(),
          piece: fc.integer({ min: 1, max: 9000 }),
          throwAt: fc.option(fc.nat({ max: 2_000_000 }), { nil: undefined, freq: 3 }),
        });
        return fc.record({ s: fc.constant(s), wals: fc.array(wal, { minLength: 1, maxLength: 3 }) });
      });
    await fc.assert(
      fc.asyncProperty(scenario, async ({ s, wals }) => {
        await applyThrough(s.ps, specsFrom(s.ps, wals), s.lend);
      }),
      { numRuns: 300 },
    );
  }, 120_000);
});
