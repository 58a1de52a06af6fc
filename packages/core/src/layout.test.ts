import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError, InvalidKeyError, LstreamError, NotFoundError } from './errors.js';
import { assertValidKey, assertValidPrefix, compareKeys, relativeKey } from './keys.js';
import {
  parseLayoutKey,
  parseSnapshotName,
  parseWalSegmentName,
  snapshotKey,
  walSegmentKey,
} from './layout.js';
import { MAX_WAL_INDEX, MAX_WAL_OFFSET, Pos, comparePos, isGenerationName, newGenerationName } from './pos.js';

const gen = fc.stringMatching(/^[0-9a-f]{16}$/);

describe('Pos', () => {
  it('formats like Litestream: hex index, decimal offset', () => {
    expect(new Pos('9ed130e36a449e5a', 0x14, 0).toString()).toBe('9ed130e36a449e5a/00000014:0');
    expect(new Pos('9ed130e36a449e5a', 1, 4152).toString()).toBe('9ed130e36a449e5a/00000001:4152');
  });

  it('parses what it formats (property)', () => {
    fc.assert(
      fc.property(gen, fc.integer({ min: 0, max: MAX_WAL_INDEX }), fc.integer({ min: 0, max: MAX_WAL_OFFSET }), (g, i, o) => {
        const p = new Pos(g, i, o);
        expect(Pos.parse(p.toString()).equals(p)).toBe(true);
      }),
    );
  });

  it('rejects malformed positions with InvalidArgumentError', () => {
    for (const s of [
      '',
      '9ed130e36a449e5a/14:0',
      '9ED130E36A449E5A/00000014:0',
      '9ed130e36a449e5a/00000014:-1',
      '9ed130e36a449e5a/00000014:01',
      '9ed130e36a449e5a/000000014:0',
      '9ed130e36a449e5a/80000000:0',
      '9ed130e36a449e5a/00000014:4294967296',
      '../9ed130e36a449e5/00000014:0',
    ]) {
      expect(() => Pos.parse(s), s).toThrow(InvalidArgumentError);
    }
  });

  it('orders by generation, index, offset', () => {
    const a = new Pos('0000000000000001', 2, 100);
    expect(comparePos(a, new Pos('0000000000000001', 2, 200))).toBeLessThan(0);
    expect(comparePos(a, new Pos('0000000000000001', 1, 900))).toBeGreaterThan(0);
    expect(comparePos(a, new Pos('0000000000000002', 0, 0))).toBeLessThan(0);
  });

  it('creates random, valid generation names', () => {
    const names = new Set(Array.from({ length: 1000 }, newGenerationName));
    expect(names.size).toBe(1000);
    for (const n of names) expect(isGenerationName(n)).toBe(true);
  });
});

describe('replica layout', () => {
  it('names objects exactly as Litestream v0.3 does', () => {
    expect(snapshotKey('b193e7959abbccff', 2)).toBe('generations/b193e7959abbccff/snapshots/00000002.snapshot.lz4');
    expect(walSegmentKey('b193e7959abbccff', 7, 0xa110)).toBe('generations/b193e7959abbccff/wal/00000007_0000a110.wal.lz4');
  });

  it('round-trips every key through the strict parser (property)', () => {
    fc.assert(
      fc.property(gen, fc.integer({ min: 0, max: MAX_WAL_INDEX }), fc.integer({ min: 0, max: MAX_WAL_OFFSET }), (g, i, o) => {
        expect(parseLayoutKey(snapshotKey(g, i))).toEqual({ kind: 'snapshot', generation: g, index: i });
        expect(parseLayoutKey(walSegmentKey(g, i, o))).toEqual({ kind: 'wal', generation: g, index: i, offset: o });
      }),
    );
  });

  it('accepts nothing else as a name', () => {
    for (const n of ['0000000a.snapshot.lz4x', '0000000A.snapshot.lz4', '000000a.snapshot.lz4', '00000000a.snapshot.lz4', '80000000.snapshot.lz4', '../0000000a.snapshot.lz4', '0000000a.snapshot']) {
      expect(parseSnapshotName(n), n).toBeUndefined();
    }
    for (const n of ['0000000a_00001038.wal.lz4.tmp', '0000000a-00001038.wal.lz4', '0000000a_100001038.wal.lz4', '0000000a/00001038.wal.lz4', '0000000a_0000103G.wal.lz4', '0000000a.wal.lz4']) {
      expect(parseWalSegmentName(n), n).toBeUndefined();
    }
    for (const k of [
      'generations/b193e7959abbccff/wal/00000000_00000000.wal.lz4/x',
      'generations/B193e7959abbccff/wal/00000000_00000000.wal.lz4',
      'generations/b193e7959abbccf/wal/00000000_00000000.wal.lz4',
      '/generations/b193e7959abbccff/wal/00000000_00000000.wal.lz4',
      'generations/b193e7959abbccff/snapshots/../wal/00000000_00000000.wal.lz4',
      'generations/b193e7959abbccff/wal/00000000/00000000.wal.lz4',
    ]) {
      expect(parseLayoutKey(k), k).toBeUndefined();
    }
  });

  it('refuses to name positions the layout cannot hold', () => {
    expect(() => walSegmentKey('b193e7959abbccff', 0, 2 ** 32)).toThrow(InvalidArgumentError);
    expect(() => snapshotKey('b193e7959abbccff', 2 ** 31)).toThrow(InvalidArgumentError);
    expect(() => snapshotKey('B193E7959ABBCCFF', 0)).toThrow(InvalidArgumentError);
  });
});

describe('keys', () => {
  it('accepts layout keys and rejects unsafe ones', () => {
    assertValidKey(snapshotKey('b193e7959abbccff', 2));
    for (const k of ['', '/a', 'a/', 'a//b', '../a', 'a/../b', './a', 'a\\b', 'a\u0000b', 'a.tmp', 'x'.repeat(1025)]) {
      expect(() => assertValidKey(k), JSON.stringify(k)).toThrow(InvalidKeyError);
    }
    assertValidPrefix('');
    assertValidPrefix('generations/');
    assertValidPrefix('generations/b1');
    expect(() => assertValidPrefix('../')).toThrow(InvalidKeyError);
  });

  it('makes stored names relative to a root, skipping names no key can address', () => {
    expect(relativeKey('backups/db/', 'backups/db/generations/a')).toBe('generations/a');
    expect(relativeKey('', 'generations/a')).toBe('generations/a');
    for (const name of [undefined, 'other/generations/a', 'backups/db/', 'backups/db/dir/', 'backups/db/a//b', 'backups/db/x.tmp']) {
      expect(relativeKey('backups/db/', name), String(name)).toBeUndefined();
    }
  });

  it('compares by UTF-8 bytes', () => {
    const keys = ['a0', 'a/b', 'a-b', 'é', 'z', 'a'];
    expect([...keys].sort(compareKeys)).toEqual(['a', 'a-b', 'a/b', 'a0', 'z', 'é']);
  });

  it('typed errors are recognised across package copies by marker', () => {
    const err = new NotFoundError('k');
    expect(NotFoundError.isInstance(err)).toBe(true);
    expect(LstreamError.isInstance(err)).toBe(true);
    expect(InvalidKeyError.isInstance(err)).toBe(false);
    expect(err.code).toBe('ENOTFOUND');
  });
});
