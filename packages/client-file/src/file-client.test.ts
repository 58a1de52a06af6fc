import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, utimes, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LstreamEmitter, NotFoundError, instrumentClient, listGenerations, listSnapshots, listWalSegments, openSnapshot, writeSnapshot, writeWalSegment, openWalSegment, deleteGeneration, collect, Pos } from '@ls/core';
import { describeReplicaClientConformance } from '@ls/conformance';
import { build } from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { FileReplicaClient, STALE_TEMP_MS } from './file-client.js';

async function freshRoot() {
  const dir = await mkdtemp(join(tmpdir(), 'lstream-file-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

describeReplicaClientConformance('file', async () => {
  const { dir, cleanup } = await freshRoot();
  const root = join(dir, 'replica');
  return { client: new FileReplicaClient({ root }), cleanup, second: async () => new FileReplicaClient({ root }) };
});

// Db.addReplica wraps every client with instrumentClient: the wrapper must keep every promise of
// the contract (same streams, same errors, aborts honoured).
describeReplicaClientConformance('file, instrumented', async () => {
  const { dir, cleanup } = await freshRoot();
  const root = join(dir, 'replica');
  const client = instrumentClient(new FileReplicaClient({ root }), new LstreamEmitter(), {
    db: join(dir, 'app.db'),
    replica: 'file',
  });
  return { client, cleanup, second: async () => new FileReplicaClient({ root }) };
});

const roots: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of roots) await c();
});
async function client() {
  const r = await freshRoot();
  roots.push(r.cleanup);
  return { dir: r.dir, client: new FileReplicaClient({ root: r.dir }) };
}

describe('FileReplicaClient', () => {
  it('never leaves a partial object visible when the writing process is killed mid-write', async () => {
    const { dir, client: c } = await client();
    const entry = fileURLToPath(new URL('../test/crash-writer.ts', import.meta.url));
    const out = join(dir, '..', `crash-writer-${process.pid}.mjs`);
    await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: out,
      conditions: ['@ls/source'],
      external: ['lz4-napi', '@node-rs/xxhash', 'better-sqlite3'],
      logLevel: 'silent',
    });
    roots.push(() => rm(out, { force: true }));
    await c.put('generations/0000000000000001/snapshots/00000000.snapshot.lz4', Buffer.from('old'));
    for (const key of ['generations/0000000000000001/snapshots/00000000.snapshot.lz4', 'generations/0000000000000001/wal/00000000_00000000.wal.lz4']) {
      const child = spawn(process.execPath, [out, dir, key], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => d.toString().includes('writing') && resolve()));
      child.kill('SIGKILL');
      await new Promise((r) => child.on('exit', r));
    }
    // The temp files are there on disk, but no listing or read ever shows them.
    const onDisk = await readdir(join(dir, 'generations/0000000000000001/snapshots'));
    expect(onDisk.some((f) => f.endsWith('.tmp'))).toBe(true);
    const listed = (await collect(c.list(''))).map((e) => e.key);
    expect(listed).toEqual(['generations/0000000000000001/snapshots/00000000.snapshot.lz4']);
    const old = await c.open(listed[0]!);
    expect(Buffer.concat(await collect(old as AsyncIterable<Buffer>)).toString()).toBe('old');
    await expect(c.open('generations/0000000000000001/wal/00000000_00000000.wal.lz4')).rejects.toBeInstanceOf(NotFoundError);

    // The next client to write there removes them once nobody has written to them for a while (a
    // crash loop during large snapshots filled the disk); a fresh one may be a put in progress.
    const snapshots = join(dir, 'generations/0000000000000001/snapshots');
    const left = onDisk.filter((f) => f.endsWith('.tmp'));
    const long = new Date(Date.now() - STALE_TEMP_MS - 60_000);
    for (const f of left) await utimes(join(snapshots, f), long, long);
    await writeFile(join(snapshots, '00000001.snapshot.lz4.inprogress.tmp'), 'x');
    await new FileReplicaClient({ root: dir }).put('generations/0000000000000001/snapshots/00000002.snapshot.lz4', Buffer.from('new'));
    expect((await readdir(snapshots)).filter((f) => f.endsWith('.tmp'))).toEqual(['00000001.snapshot.lz4.inprogress.tmp']);
  });

  it('never writes outside its root, even through a symlinked or hostile key', async () => {
    const { dir } = await client();
    const inner = new FileReplicaClient({ root: join(dir, 'inner') });
    await expect(inner.put('../outside', Buffer.from('x'))).rejects.toThrow(/invalid object key/);
    await expect(inner.put('a/../../outside', Buffer.from('x'))).rejects.toThrow(/invalid object key/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('lists nothing but the layout through the layout functions, and ignores stray files', async () => {
    const { dir, client: c } = await client();
    const gen = 'b193e7959abbccff';
    await writeSnapshot(c, gen, 0, Buffer.from('snapshot bytes'));
    await writeWalSegment(c, new Pos(gen, 0, 0), Buffer.from('wal bytes'));
    await writeWalSegment(c, new Pos(gen, 0, 4152), Buffer.from('more'));
    await writeWalSegment(c, new Pos(gen, 1, 0), Buffer.from('next index'));
    // Strays a human or another tool might leave: never taken for replica objects.
    await mkdir(join(dir, 'generations', 'NOTAGEN'), { recursive: true });
    await writeFile(join(dir, 'generations', 'NOTAGEN', 'x'), 'x');
    await writeFile(join(dir, 'generations', gen, 'wal', '00000000_00001038.wal.lz4.tmp'), 'partial');
    await writeFile(join(dir, 'generations', gen, 'wal', 'README'), 'hello');
    expect(await listGenerations(c)).toEqual([gen]);
    expect((await collect(listSnapshots(c, gen))).map((s) => s.index)).toEqual([0]);
    expect((await collect(listWalSegments(c, gen))).map((s) => [s.index, s.offset])).toEqual([
      [0, 0],
      [0, 4152],
      [1, 0],
    ]);
    const snap = await openSnapshot(c, gen, 0);
    expect(Buffer.concat(await collect(snap as AsyncIterable<Buffer>)).toString()).toBe('snapshot bytes');
    const seg = await openWalSegment(c, new Pos(gen, 0, 4152));
    expect(Buffer.concat(await collect(seg as AsyncIterable<Buffer>)).toString()).toBe('more');
    await deleteGeneration(c, gen);
    expect(await listGenerations(c)).toEqual([]);
  });
});
