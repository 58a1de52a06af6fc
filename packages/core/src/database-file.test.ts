import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DatabaseFile } from './database-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lstream-dbfile-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

// FileHandle.fd is -1 once the handle is closed.
const isOpen = (f: DatabaseFile) => f.fh.fd >= 0;

describe('DatabaseFile', () => {
  it('gives every user of a file the same descriptor, and keeps it open while the file is at its path', async () => {
    const path = join(dir, 'a.db');
    await writeFile(path, 'first');
    const a = await DatabaseFile.acquire(path);
    const b = await DatabaseFile.acquire(path);
    expect(b).toBe(a);
    await a.release();
    await b.release();
    // Nobody uses it, but closing it would drop the locks SQLite holds on the file: it stays.
    expect(isOpen(a)).toBe(true);
    const again = await DatabaseFile.acquire(path);
    expect(again).toBe(a);
    await again.release();
    await expect(again.release()).rejects.toThrow('released more often than acquired');
  });

  it('closes the descriptor of a file replaced or removed at its path once its last user is done', async () => {
    const path = join(dir, 'b.db');
    await writeFile(path, 'old');
    const old = await DatabaseFile.acquire(path);
    await writeFile(`${path}.new`, 'new');
    await rename(`${path}.new`, path);
    const fresh = await DatabaseFile.acquire(path);
    expect(fresh).not.toBe(old);
    const buf = Buffer.alloc(3);
    await fresh.fh.read(buf, 0, 3, 0);
    expect(buf.toString()).toBe('new');
    // Still in use: open, and still reading the old file.
    await old.fh.read(buf, 0, 3, 0);
    expect(buf.toString()).toBe('old');
    await old.release();
    expect(isOpen(old)).toBe(false);
    await rm(path);
    await fresh.release();
    expect(isOpen(fresh)).toBe(false);
  });

  it('closes a descriptor left for a file once another file takes its path and is acquired', async () => {
    const path = join(dir, 'c.db');
    await writeFile(path, 'one');
    const one = await DatabaseFile.acquire(path);
    await one.release();
    expect(isOpen(one)).toBe(true);
    await writeFile(`${path}.new`, 'two');
    await rename(`${path}.new`, path);
    const two = await DatabaseFile.acquire(path);
    expect(isOpen(one)).toBe(false);
    await two.release();
  });

  it('rejects as open does for a missing file', async () => {
    await expect(DatabaseFile.acquire(join(dir, 'missing.db'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
