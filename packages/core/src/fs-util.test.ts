import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReplicaError } from './errors.js';
import { readRange } from './fs-util.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lstream-fs-util-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('readRange', () => {
  it('yields exactly the bytes of the range, across chunk boundaries', async () => {
    const path = join(dir, 'wal');
    const data = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 123 }, (_, i) => (i * 31 + (i >> 12)) & 0xff));
    await writeFile(path, data);
    for (const [start, end] of [
      [0, data.length],
      [32, 2 * 1024 * 1024 + 4152],
      [data.length, data.length],
    ] as const) {
      const parts: Buffer[] = [];
      // Chunks are refilled once the next is asked for: keep copies.
      for await (const c of readRange(path, start, end)) parts.push(Buffer.from(c));
      expect(Buffer.concat(parts).equals(data.subarray(start, end))).toBe(true);
    }
  });

  it('fails with ReplicaError when the file ends before the range does', async () => {
    const path = join(dir, 'short');
    await writeFile(path, Buffer.alloc(5000, 7));
    const read = async () => {
      for await (const c of readRange(path, 0, 9000)) void c;
    };
    await expect(read()).rejects.toBeInstanceOf(ReplicaError);
    await expect(read()).rejects.toThrow(/ended at 5000, expected 9000/);
    const pastEnd = async () => {
      for await (const c of readRange(path, 6000, 9000)) void c;
    };
    await expect(pastEnd()).rejects.toThrow(/ended at 6000, expected 9000/);
  });
});
