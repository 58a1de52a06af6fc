// Restore's choices and failures on copies of the replica Litestream v0.3.14 wrote (fixtures/), with
// object times set by hand (a file replica's object time is its file's modification time): which
// generation a timestamp picks, a WAL index lost whole, corrupt objects named in the error, and an
// output directory that does not exist yet.
import { cp, mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { MissingSegmentError, NoBackupError, RestoreOutputError, restore, type RestoreOptions } from '@ls/core';
import { CorruptDataError, lz4CompressFrame } from '@ls/wal';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileReplicaClient } from './file-client.js';

const FIXTURE = fileURLToPath(new URL('../../../fixtures/litestream-v0.3.14-replica/replica/generations/b193e7959abbccff', import.meta.url));
const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';
const T0 = Date.parse('2026-01-01T00:00:00Z');
const MIN = 60_000;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lstream-restore-plan-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The fixture generation's objects in replica order: by index, each index's snapshot before its segments. */
async function objects(): Promise<string[]> {
  const snaps = (await readdir(join(FIXTURE, 'snapshots'))).map((f) => `snapshots/${f}`);
  const wal = (await readdir(join(FIXTURE, 'wal'))).map((f) => `wal/${f}`);
  const index = (f: string) => parseInt(f.split('/')[1]!.slice(0, 8), 16);
  return [...snaps, ...wal].sort((x, y) => index(x) - index(y) || (x.startsWith('snap') ? -1 : y.startsWith('snap') ? 1 : x < y ? -1 : 1));
}

/** Copies the fixture generation into `root` as `gen`, object k created at `startMin + k × stepMin` minutes. */
async function addGeneration(root: string, gen: string, startMin: number, stepMin: number, keep: (f: string) => boolean = () => true): Promise<string[]> {
  const kept = (await objects()).filter(keep);
  for (const [k, f] of kept.entries()) {
    const to = join(root, 'generations', gen, f);
    await mkdir(join(to, '..'), { recursive: true });
    await cp(join(FIXTURE, f), to);
    const t = new Date(T0 + (startMin + k * stepMin) * MIN);
    await utimes(to, t, t);
  }
  return kept;
}

let n = 0;
async function run(root: string, options: Omit<RestoreOptions, 'outputPath'>, outputPath = join(dir, `out-${++n}.db`)) {
  const result = await restore(new FileReplicaClient({ root }), { ...options, outputPath });
  const db = new Database(outputPath, { readonly: true });
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    return { result, rows: db.prepare('SELECT count(*) FROM t').pluck().get() as number };
  } finally {
    db.close();
  }
}

async function failure(root: string, options: Omit<RestoreOptions, 'outputPath'>) {
  const out = join(dir, `fail-${++n}.db`);
  const err = await restore(new FileReplicaClient({ root }), { ...options, outputPath: out }).then(
    () => undefined,
    (e: unknown) => e,
  );
  // Nothing is left behind at the output path.
  const left = (await readdir(dir)).filter((f) => f.startsWith(`fail-${n}.db`));
  expect(left).toEqual([]);
  return err as Error & { key?: string; object?: string };
}

describe('restore on a hand-timed copy of a Litestream replica', () => {
  it('picks, for a timestamp, the generation whose span holds it over one that started later but had ended', async () => {
    const root = join(dir, 'two-gens');
    // A: 16 objects from 00:00 to 01:30. B: index 0 only, 00:10 to 00:13.
    await addGeneration(root, A, 0, 6);
    await addGeneration(root, B, 10, 1, (f) => f === 'snapshots/00000000.snapshot.lz4' || f.startsWith('wal/00000000_'));
    const at50 = await run(root, { timestamp: new Date(T0 + 50 * MIN) });
    expect(at50.result.plan.generation).toBe(A);
    // A at 00:50: snapshot 2 (00:36) and the segments of index 2 created by then (00:42, 00:48).
    expect(at50.result.pos.toString()).toBe(`${A}/00000002:${0x25398}`);
    // Past every generation's end: the one updated last, to its end (index 4: 2280 rows).
    const late = await run(root, { timestamp: new Date(T0 + 300 * MIN) });
    expect(late.result.plan.generation).toBe(A);
    expect(late.rows).toBe(2280);
    // While B was the only one running its index 0 was the latest state: 00:12 falls in both, and A
    // was updated last, so A still wins; B is chosen only when named.
    const named = await run(root, { generation: B, timestamp: new Date(T0 + 12 * MIN) });
    expect(named.result.plan.generation).toBe(B);
  });

  it('refuses, naming the object, when every segment of the snapshot’s index is lost but later ones exist', async () => {
    const root = join(dir, 'lost-index');
    await addGeneration(root, A, 0, 6, (f) => !f.startsWith('wal/00000002_'));
    // Without index 2's segments, snapshot 2 is at 00:36 and snapshot 3 at 00:42: at 00:40 the
    // restore would stop at snapshot 2 though index 2 had frames by then.
    for (const options of [{ generation: A, index: 2 }, { timestamp: new Date(T0 + 40 * MIN) }]) {
      const err = await failure(root, options);
      expect(MissingSegmentError.isInstance(err), String(err)).toBe(true);
      expect(err.key).toBe(`generations/${A}/wal/00000002_00000000.wal.lz4`);
    }
    // Index 3 has its own snapshot and segments: still restorable.
    expect((await run(root, { generation: A, index: 3 })).rows).toBe(2280);
  });

  it('names the corrupt object: a damaged segment, a truncated segment, a damaged snapshot', async () => {
    const cases: [string, (b: Buffer) => Buffer, Omit<RestoreOptions, 'outputPath'>][] = [
      ['wal/00000002_00001038.wal.lz4', (b) => ((b[200]! ^= 0xff), b), { generation: A, index: 2 }],
      ['wal/00000003_00025398.wal.lz4', (b) => b.subarray(0, b.length - 100), { generation: A, index: 3 }],
      ['snapshots/00000004.snapshot.lz4', (b) => ((b[3000]! ^= 0xff), b), {}],
    ];
    for (const [k, [file, damage, options]] of cases.entries()) {
      const root = join(dir, `corrupt-${k}`);
      await addGeneration(root, A, 0, 6);
      const path = join(root, 'generations', A, file);
      await writeFile(path, damage(await readFile(path)));
      const err = await failure(root, options);
      expect(CorruptDataError.isInstance(err), String(err)).toBe(true);
      expect(err.object).toBe(`generations/${A}/${file}`);
      expect(err.message).toContain(`generations/${A}/${file}`);
    }
  });

  it('restores the snapshot alone for a time after it but before its index’s first segment, and calls a time before every backup "no backup"', async () => {
    const root = join(dir, 'between');
    await addGeneration(root, A, 0, 6);
    // Snapshot 2 at 00:36, index 2's first segment at 00:42: at 00:38 the state is snapshot 2's,
    // which is the end of index 1.
    const at38 = await run(root, { timestamp: new Date(T0 + 38 * MIN) });
    expect(at38.result.plan.snapshot.index).toBe(2);
    expect(at38.result.plan.segments).toEqual([]);
    expect(at38.result.pos.toString()).toBe(`${A}/00000002:0`);
    const endOfIndex1 = await run(root, { generation: A, index: 1 });
    expect(at38.rows).toBe(endOfIndex1.rows);
    expect(at38.rows).toBeGreaterThan(0);
    // The same for the generation's first snapshot, before any segment.
    const at3 = await run(root, { timestamp: new Date(T0 + 3 * MIN) });
    expect(at3.result.plan.segments).toEqual([]);
    expect(at3.result.pos.toString()).toBe(`${A}/00000000:0`);
    const before = await failure(root, { timestamp: new Date(T0 - MIN) });
    expect(NoBackupError.isInstance(before), String(before)).toBe(true);
    expect(before.message).toContain(`the earliest is from ${new Date(T0).toISOString()}`);
  });

  it('suggests an index that restores when a segment in the middle of an index is lost', async () => {
    const root = join(dir, 'gap');
    await addGeneration(root, A, 0, 6, (f) => f !== 'wal/00000002_00001038.wal.lz4');
    const err = await failure(root, { generation: A, index: 2 });
    expect(MissingSegmentError.isInstance(err), String(err)).toBe(true);
    expect(err.message).toContain('-index 1 ');
    expect((await run(root, { generation: A, index: 1 })).rows).toBeGreaterThan(0);
  });

  it('names the snapshot when it decodes but holds no SQLite database', async () => {
    const root = join(dir, 'not-sqlite');
    await addGeneration(root, A, 0, 6);
    const file = 'snapshots/00000004.snapshot.lz4';
    await writeFile(join(root, 'generations', A, file), await lz4CompressFrame(Buffer.alloc(65536, 'not a database ')));
    const err = await failure(root, {});
    expect(CorruptDataError.isInstance(err), String(err)).toBe(true);
    expect(err.object).toBe(`generations/${A}/${file}`);
    expect(err.message).toContain(`generations/${A}/${file} is not a SQLite database`);
    expect(err.message).not.toContain('.tmp');
  });

  it('says what is wrong with an output path it cannot write, naming it', async () => {
    const root = join(dir, 'plain-out');
    await addGeneration(root, A, 0, 6);
    await writeFile(join(dir, 'a-file'), 'x');
    const out = join(dir, 'a-file', 'app.db');
    const err = await restore(new FileReplicaClient({ root }), { outputPath: out }).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(RestoreOutputError.isInstance(err), String(err)).toBe(true);
    expect(err!.code).toBe('ENOTDIR');
    expect(err!.message).toBe(`cannot write the restored database at ${out}: a directory in the path is a file; restore to another path`);
    expect(await readFile(join(dir, 'a-file'), 'utf8')).toBe('x');
  });

  it('creates the output’s directory when it does not exist', async () => {
    const root = join(dir, 'plain');
    await addGeneration(root, A, 0, 6);
    const { rows } = await run(root, {}, join(dir, 'new', 'deeper', 'app.db'));
    expect(rows).toBe(2280);
  });
});
