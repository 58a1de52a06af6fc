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

/**
 * A fresh database (page size PS, WAL mode) in `sub`, and beside it a WAL of `frames`
 * ([page number, commit size] each), every page but the first filled with its number.
 */
async function databaseAndWal(sub: string, frames: [number, number][], salt: number): Promise<{ db: string; walPath: string }> {
  await mkdir(sub, { recursive: true });
  const db = join(sub, 'app.db');
  const setup = new Database(db);
  setup.pragma(`page_size = ${PS}`);
  setup.pragma('journal_mode = wal');
  setup.exec('CREATE TABLE t(x)');
  setup.pragma('wal_checkpoint(TRUNCATE)');
  setup.close();
  const before = await readFile(db);
  const header = { bigEndianChecksum: false, pageSize: PS, checkpointSeq: 1, salt1: salt, salt2: salt * 2 };
  const head = encodeWalHeader(header);
  const parsed = parseWalHeader(head);
  let chain: [number, number] = [parsed.checksum1, parsed.checksum2];
  const parts = [Buffer.from(head)];
  for (const [pgno, commit] of frames) {
    const img = pgno === 1 ? Buffer.concat([before.subarray(0, 100), Buffer.alloc(PS - 100, 1)]) : Buffer.alloc(PS, pgno & 0xff);
    const r = encodeWalFrame(header, pgno, commit, img, chain);
    chain = r.chain;
    parts.push(Buffer.from(r.frame));
  }
  const walPath = join(sub, 'big.wal');
  await writeFile(walPath, Buffer.concat(parts));
  return { db, walPath };
}

type ChildReport = Record<string, { code?: string; message: string } | string | string[] | boolean>;

/**
 * Applies `walPath` to `db` with 50 pages of buffer in a child process under a 700 KiB file size
 * limit. The child is this package's source, bundled into `home/child/` (outside the directory the
 * test lists); with `binding`, the binding is copied to `home/build/`, where the child finds it.
 */
async function applyUnderLimit(home: string, db: string, walPath: string, binding: boolean, through = false): Promise<ChildReport> {
  const child = join(home, 'child', 'child.mjs');
  if (binding) {
    await mkdir(join(home, 'build'), { recursive: true });
    await copyFile(fileURLToPath(new URL('../build/lz4-native.node', import.meta.url)), join(home, 'build', 'lz4-native.node'));
  }
  await build({ entryPoints: [CHILD_SOURCE], bundle: true, platform: 'node', format: 'esm', outfile: child, external: ['lz4-napi', '@node-rs/xxhash'], logLevel: 'silent' });
  try {
    // `ulimit -f` counts KiB, or 512-byte blocks when bash runs in POSIX mode: so no POSIXLY_CORRECT.
    const { POSIXLY_CORRECT: _, ...env } = process.env;
    const { stdout } = await run('bash', ['-c', 'ulimit -f 700 && exec "$0" "$@"', process.execPath, child, db, walPath, String(50 * PS), through ? 'through' : 'buffered'], { env });
    return JSON.parse(stdout) as ChildReport;
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

/** What a failed write must leave: the apply fails with EFBIG, later calls refuse, close writes nothing. */
function expectRefusedAndNothingWritten(r: ChildReport): void {
  expect(r.apply).toMatchObject({ code: 'EFBIG' });
  expect((r.again as { message: string }).message).toMatch(/earlier write failed partway through a transaction/);
  expect((r.close as { message: string }).message).toMatch(/earlier write failed partway through a transaction/);
  // close() wrote nothing: the pages still buffered never reach the file.
  expect(r.dbAfterClose).toBe(r.dbBeforeClose);
  // No spill file is left, and nothing but the database and the WAL is in the directory.
  expect([...(r.files as string[])].sort()).toEqual(['app.db', 'big.wal']);
}

describe('WalApplier after a failed write', () => {
  it('refuses further applies and closes without writing when a spilled commit fails partway', async () => {
    // One transaction of pages 200 down to 1 (a valid WAL need not be in page order). With 50 pages
    // of buffer, pages 200..51 spill (600 KiB of spill file) and are then written into the database
    // at 200-800 KiB: past the 700 KiB limit halfway through.
    const frames: [number, number][] = [];
    for (let pgno = 200; pgno >= 1; pgno--) frames.push([pgno, pgno === 1 ? 200 : 0]);
    const { db, walPath } = await databaseAndWal(join(dir, 'spill'), frames, 11);
    expectRefusedAndNothingWritten(await applyUnderLimit(join(dir, `spill-child-${process.pid}`), db, walPath, false));
  });

  // Where CI requires the binding, a missing one fails here rather than skipping.
  it.skipIf(!required && !nativePwriteRuns())('refuses further applies and closes without writing when a write on the thread pool fails', async () => {
    // 40 transactions of 10 new pages each (1.6 MiB); with 50 pages of buffer, committed pages are
    // written every five or so, by the binding on the thread pool, until one passes the 700 KiB limit.
    const frames: [number, number][] = [];
    for (let pgno = 1; pgno <= 400; pgno++) frames.push([pgno, pgno % 10 === 0 ? pgno : 0]);
    const { db, walPath } = await databaseAndWal(join(dir, 'pool'), frames, 33);
    const r = await applyUnderLimit(join(dir, `pool-child-${process.pid}`), db, walPath, true);
    expect(r.nativeWrites).toBe(true);
    expectRefusedAndNothingWritten(r);
  });

  for (const binding of [false, true]) {
    it.skipIf(binding && !required && !nativePwriteRuns())(
      `refuses further applies and closes without writing when a page written through fails (${binding ? 'on the thread pool' : 'without the binding'})`,
      async () => {
        // The same 40 transactions, written through as they are read: page 176 is the first past 700 KiB.
        const frames: [number, number][] = [];
        for (let pgno = 1; pgno <= 400; pgno++) frames.push([pgno, pgno % 10 === 0 ? pgno : 0]);
        const { db, walPath } = await databaseAndWal(join(dir, `through-${binding}`), frames, 55);
        const r = await applyUnderLimit(join(dir, `through-child-${binding}-${process.pid}`), db, walPath, binding, true);
        expect(r.nativeWrites).toBe(binding);
        expectRefusedAndNothingWritten(r);
      },
    );
  }
});
