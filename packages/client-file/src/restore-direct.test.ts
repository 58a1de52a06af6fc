// Snapshot restores write decoded blocks to disk directly (O_DIRECT) where they can and through the
// page cache where they cannot: blocks stored uncompressed, a tail that is not a whole number of
// 4 KiB, file systems that refuse direct I/O. Whatever the mix, the restored file must hold the
// snapshot's bytes exactly, with direct I/O on and off.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { restore, snapshotKey } from '@ls/core';
import { lz4CompressFrame } from '@ls/wal';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FileReplicaClient } from './file-client.js';

const GEN = '0123456789abcdef';
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lstream-restore-direct-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.LSTREAM_DIRECT_IO;
});

/** Bytes of `path` in the page cache, as util-linux's fincore counts them. */
function residentBytes(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

/** A real database of about `mib` MiB with the given page size: compressible rows, then random blobs. */
function makeDatabase(path: string, pageSize: number, mib: number, extraPages = 0): Buffer {
  const db = new Database(path);
  db.pragma(`page_size = ${pageSize}`);
  db.pragma('journal_mode = delete');
  db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, body BLOB)');
  const ins = db.prepare('INSERT INTO t(body) VALUES (?)');
  db.transaction(() => {
    for (let i = 0; i < mib * 128; i++) ins.run(i < mib * 48 ? Buffer.alloc(8000, i % 251) : Buffer.from(crypto.getRandomValues(new Uint8Array(8000))));
    for (let i = 0; i < extraPages; i++) ins.run(Buffer.alloc(pageSize / 2, 7));
  })();
  db.close();
  return readFileSync(path);
}

/**
 * The LZ4 frame lstream writes for `data`, with every second block stored uncompressed instead (as
 * an encoder does with a block that does not shrink): a valid frame of the same content.
 */
async function mixedFrame(data: Buffer): Promise<{ frame: Buffer; raw: number; rawBytes: number }> {
  const frame = await lz4CompressFrame(data);
  const flg = frame[4]!;
  expect(flg & 0x10).toBe(0); // no block checksums to recompute
  let p = 4 + 3 + (flg & 0x08 ? 8 : 0);
  const parts = [frame.subarray(0, p)];
  let at = 0;
  let raw = 0;
  let rawBytes = 0;
  for (let k = 0; ; k++) {
    const word = frame.readUInt32LE(p);
    if (word === 0) break;
    const size = word & 0x7fffffff;
    const block = frame.subarray(p, p + 4 + size);
    p += 4 + size;
    // Each block but the last holds 4 MiB of content.
    const len = Math.min(4 * 1024 * 1024, data.length - at);
    if (k % 2 === 1) {
      const head = Buffer.alloc(4);
      head.writeUInt32LE((len | 0x80000000) >>> 0);
      parts.push(head, data.subarray(at, at + len));
      raw++;
      rawBytes += len;
    } else parts.push(block);
    at += len;
  }
  parts.push(frame.subarray(p)); // end mark and content checksum, unchanged: the content is the same
  return { frame: Buffer.concat(parts), raw, rawBytes };
}

async function replicaOf(name: string, db: Buffer): Promise<{ root: string; raw: number; rawBytes: number }> {
  const root = join(dir, name, 'replica');
  const { frame, raw, rawBytes } = await mixedFrame(db);
  const file = join(root, snapshotKey(GEN, 0));
  await mkdir(join(file, '..'), { recursive: true });
  await writeFile(file, frame);
  return { root, raw, rawBytes };
}

describe('snapshot restore, direct and buffered writes', () => {
  for (const direct of ['on', 'off']) {
    it(`restores a 4 KiB-page database with uncompressed blocks byte for byte (direct I/O ${direct})`, async () => {
      const name = `p4096-${direct}`;
      await mkdir(join(dir, name), { recursive: true });
      const src = makeDatabase(join(dir, name, 'src.db'), 4096, 14);
      const { root, raw, rawBytes } = await replicaOf(name, src);
      expect(raw).toBeGreaterThan(0);
      expect(src.length % (4 * 1024 * 1024)).not.toBe(0);
      process.env.LSTREAM_DIRECT_IO = direct;
      const out = join(dir, name, 'out.db');
      const r = await restore(new FileReplicaClient({ root }), { outputPath: out });
      expect(r.dbBytes).toBe(src.length);
      // Direct writes skip the page cache: only the blocks stored uncompressed went through it.
      const cached = residentBytes(out);
      if (direct === 'on') expect(cached).toBeLessThanOrEqual(rawBytes + 64 * 1024);
      else expect(cached).toBe(src.length);
      expect((await readFile(out)).equals(src)).toBe(true);
      const db = new Database(out, { readonly: true });
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      db.close();
    });
  }

  it('restores a 512-byte-page database whose size is not a multiple of 4 KiB byte for byte', async () => {
    const name = 'p512';
    await mkdir(join(dir, name), { recursive: true });
    const file = join(dir, name, 'src.db');
    let src = makeDatabase(file, 512, 9);
    for (let extra = 1; src.length % 4096 === 0; extra++) {
      rmSync(file);
      src = makeDatabase(file, 512, 9, extra);
    }
    const { root } = await replicaOf(name, src);
    const out = join(dir, name, 'out.db');
    await restore(new FileReplicaClient({ root }), { outputPath: out });
    expect((await readFile(out)).equals(src)).toBe(true);
  });
});
