import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../test/helpers.js';
import { nativePwriteRuns } from './lz4-native.js';
import { encodeWalFrame, encodeWalHeader, parseWalHeader } from './wal-format.js';

// A write that really fails (the file size limit of `ulimit -f`, in a child process) partway through
// writing a spilled transaction into the database: the applier must refuse to go on and close
// without writing, and leave no spill file behind.

const run = promisify(execFile);
const CHILD_SOURCE = fileURLToPath(new URL('../test/spill-failure-child.ts', import.meta.url));
const PS = 4096;
const required = process.env.LSTREAM_NATIVE_REQUIRED === '1';

let dir: string;
let cleanup: () => Promise<void>;
beforeAll(async () => ({ dir, cleanup } = await tempDir()));
afterAll(() => cleanup());

describe('WalApplier after a failed write', () => {
  it('refuses further applies and closes without writing when a spilled commit fails partway', async () => {
    const db = join(dir, 'app.db');
    const setup = new Database(db);
    setup.pragma(`page_size = ${PS}`);
    setup.pragma('journal_mode = wal');
    setup.exec('CREATE TABLE t(x)');
    setup.pragma('wal_checkpoint(TRUNCATE)');
    setup.close();
    const before = await readFile(db);

    // One transaction of pages 200 down to 1 (a valid WAL need not be in page order). With 50 pages
    // of buffer, pages 200..51 spill (600 KiB of spill file) and are then written into the database
    // at 200-800 KiB: past the 700 KiB limit halfway through.
    const header = { bigEndianChecksum: false, pageSize: PS, checkpointSeq: 1, salt1: 11, salt2: 22 };
    const head = encodeWalHeader(header);
    const parsed = parseWalHeader(head);
    let chain: [number, number] = [parsed.checksum1, parsed.checksum2];
    const parts = [Buffer.from(head)];
    for (let pgno = 200; pgno >= 1; pgno--) {
      const img = pgno === 1 ? Buffer.concat([before.subarray(0, 100), Buffer.alloc(PS - 100, 1)]) : Buffer.alloc(PS, pgno & 0xff);
      const r = encodeWalFrame(header, pgno, pgno === 1 ? 200 : 0, img, chain);
      chain = r.chain;
      parts.push(Buffer.from(r.frame));
    }
    const walPath = join(dir, 'big.wal');
    await writeFile(walPath, Buffer.concat(parts));

    // The child is this package's source, bundled (outside the directory the test lists).
    const child = join(dir, '..', `spill-failure-child-${process.pid}.mjs`);
    await build({ entryPoints: [CHILD_SOURCE], bundle: true, platform: 'node', format: 'esm', outfile: child, external: ['lz4-napi', '@node-rs/xxhash'], logLevel: 'silent' });
    try {
      // `ulimit -f` counts KiB, or 512-byte blocks when bash runs in POSIX mode: so no POSIXLY_CORRECT.
      const { POSIXLY_CORRECT: _, ...env } = process.env;
      const { stdout } = await run('bash', ['-c', 'ulimit -f 700 && exec "$0" "$@"', process.execPath, child, db, walPath, String(50 * PS)], { env });
      const r = JSON.parse(stdout) as Record<string, { code?: string; message: string } | string | string[]>;
      expect(r.apply).toMatchObject({ code: 'EFBIG' });
      expect((r.again as { message: string }).message).toMatch(/earlier write failed partway through a transaction/);
      expect((r.close as { message: string }).message).toMatch(/earlier write failed partway through a transaction/);
      // close() wrote nothing: the pages still buffered never reach the file.
      expect(r.dbAfterClose).toBe(r.dbBeforeClose);
      // No spill file is left, and nothing but the database and the WAL is in the directory.
      expect([...(r.files as string[])].sort()).toEqual(['app.db', 'big.wal']);
    } finally {
      await rm(child, { force: true });
    }
  });

  // Where CI requires the binding, a missing one fails here rather than skipping.
  it.skipIf(!required && !nativePwriteRuns())('refuses further applies and closes without writing when a write on the thread pool fails', async () => {
    const sub = join(dir, 'pool');
    await mkdir(sub, { recursive: true });
    const db = join(sub, 'app.db');
    const setup = new Database(db);
    setup.pragma(`page_size = ${PS}`);
    setup.pragma('journal_mode = wal');
    setup.exec('CREATE TABLE t(x)');
    setup.pragma('wal_checkpoint(TRUNCATE)');
    setup.close();
    const before = await readFile(db);
    // 40 transactions of 10 new pages each (1.6 MiB); with 50 pages of buffer, committed pages are
    // written every five or so, by the binding on the thread pool, until one passes the 700 KiB limit.
    const header = { bigEndianChecksum: false, pageSize: PS, checkpointSeq: 1, salt1: 33, salt2: 44 };
    const head = encodeWalHeader(header);
    const parsed = parseWalHeader(head);
    let chain: [number, number] = [parsed.checksum1, parsed.checksum2];
    const parts = [Buffer.from(head)];
    for (let pgno = 1; pgno <= 400; pgno++) {
      const img = pgno === 1 ? Buffer.concat([before.subarray(0, 100), Buffer.alloc(PS - 100, 1)]) : Buffer.alloc(PS, pgno & 0xff);
      const r = encodeWalFrame(header, pgno, pgno % 10 === 0 ? pgno : 0, img, chain);
      chain = r.chain;
      parts.push(Buffer.from(r.frame));
    }
    const walPath = join(sub, 'big.wal');
    await writeFile(walPath, Buffer.concat(parts));
    // The bundled child finds the binding at ../build/lz4-native.node from its own directory.
    const pkg = join(dir, `pkg-${process.pid}`);
    await mkdir(join(pkg, 'build'), { recursive: true });
    await mkdir(join(pkg, 'child'), { recursive: true });
    await copyFile(fileURLToPath(new URL('../build/lz4-native.node', import.meta.url)), join(pkg, 'build', 'lz4-native.node'));
    const child = join(pkg, 'child', 'child.mjs');
    await build({ entryPoints: [CHILD_SOURCE], bundle: true, platform: 'node', format: 'esm', outfile: child, external: ['lz4-napi', '@node-rs/xxhash'], logLevel: 'silent' });
    try {
      const { POSIXLY_CORRECT: _, ...env } = process.env;
      const { stdout } = await run('bash', ['-c', 'ulimit -f 700 && exec "$0" "$@"', process.execPath, child, db, walPath, String(50 * PS)], { env });
      const r = JSON.parse(stdout) as Record<string, { code?: string; message: string } | string | string[] | boolean>;
      expect(r.nativeWrites).toBe(true);
      expect(r.apply).toMatchObject({ code: 'EFBIG' });
      expect((r.again as { message: string }).message).toMatch(/earlier write failed partway through a transaction/);
      expect((r.close as { message: string }).message).toMatch(/earlier write failed partway through a transaction/);
      expect(r.dbAfterClose).toBe(r.dbBeforeClose);
      expect([...(r.files as string[])].sort()).toEqual(['app.db', 'big.wal']);
    } finally {
      await rm(pkg, { recursive: true, force: true });
    }
  });
});
