import { mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DIRECT_IO_ALIGN, allocAligned, directIoAvailable, directWritable, isDirectIoRefusal, openDirect } from './direct-io.js';
import { writeAt } from './file-chunks.js';
import { decodeLz4Frame, lz4CompressFrame, releaseDecodedBlock } from './lz4-frame.js';
import { nativeAlignGap } from './lz4-native.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lstream-direct-io-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(() => {
  delete process.env.LSTREAM_DIRECT_IO;
});

// The binding is built wherever these tests run in CI (LSTREAM_NATIVE_REQUIRED=1); without it,
// wal-native-off.test.ts covers the fallback.
describe.runIf(process.platform === 'linux' && nativeAlignGap() !== undefined)('direct I/O on Linux', () => {
  it('allocates memory aligned for direct writes, whatever the size', () => {
    for (const n of [1, 4096, 65536, 4 * 1024 * 1024 + 17]) {
      const b = allocAligned(n);
      expect(b.length).toBeGreaterThanOrEqual(n);
      expect(nativeAlignGap()!(b, DIRECT_IO_ALIGN)).toBe(0);
    }
  });

  it('accepts only aligned memory, positions and lengths', () => {
    const b = allocAligned(3 * DIRECT_IO_ALIGN);
    expect(directWritable(b.subarray(0, DIRECT_IO_ALIGN), 0)).toBe(true);
    expect(directWritable(b.subarray(0, 2 * DIRECT_IO_ALIGN), 5 * DIRECT_IO_ALIGN)).toBe(true);
    expect(directWritable(b.subarray(512, 512 + DIRECT_IO_ALIGN), 0)).toBe(false);
    expect(directWritable(b.subarray(0, DIRECT_IO_ALIGN), 512)).toBe(false);
    expect(directWritable(b.subarray(0, DIRECT_IO_ALIGN + 512), 0)).toBe(false);
    expect(directWritable(b.subarray(0, 0), 0)).toBe(false);
  });

  it('hands out decoded blocks that can be written directly, also once given back and reused', async () => {
    const data = Buffer.alloc(12 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
    const frame = await lz4CompressFrame(data);
    for (let round = 0; round < 2; round++) {
      const seen: boolean[] = [];
      for await (const block of decodeLz4Frame([frame], { blocksGivenBack: true })) {
        seen.push(directWritable(block, 0));
        releaseDecodedBlock(block);
      }
      expect(seen).toEqual([true, true, true]);
    }
  });

  it('writes a file directly that reads back byte for byte, even once its path names another file, and is turned off by LSTREAM_DIRECT_IO=off', async () => {
    const path = join(dir, 'direct.bin');
    await writeFile(path, '');
    expect(directIoAvailable()).toBe(true);
    const plain = await open(path, 'r+');
    const fh = await openDirect(plain);
    expect(fh).toBeDefined();
    // Another file takes the path: the direct handle still reaches the one `plain` has open.
    await rename(path, `${path}.moved`);
    await writeFile(path, 'someone else');
    const b = allocAligned(2 * 1024 * 1024);
    for (let i = 0; i < b.length; i++) b[i] = (i * 7) & 0xff;
    try {
      await writeAt(fh!, b.subarray(0, 1024 * 1024), 1024 * 1024);
      await writeAt(fh!, b.subarray(1024 * 1024, 2 * 1024 * 1024), 0);
      await fh!.sync();
    } finally {
      await fh!.close();
    }
    const back = await readFile(`${path}.moved`);
    expect(back.subarray(0, 1024 * 1024).equals(b.subarray(1024 * 1024, 2 * 1024 * 1024))).toBe(true);
    expect(back.subarray(1024 * 1024).equals(b.subarray(0, 1024 * 1024))).toBe(true);
    expect(await readFile(path, 'utf8')).toBe('someone else');

    process.env.LSTREAM_DIRECT_IO = 'off';
    expect(directIoAvailable()).toBe(false);
    expect(await openDirect(plain)).toBeUndefined();
    await plain.close();
  });

  it('takes EINVAL and ENOTSUP, however named, as a file system refusing direct I/O, and nothing else', () => {
    const err = (code: string) => Object.assign(new Error(code), { code });
    for (const code of ['EINVAL', 'ENOTSUP', 'EOPNOTSUPP']) expect(isDirectIoRefusal(err(code))).toBe(true);
    for (const code of ['ENOSPC', 'EIO', 'EACCES', 'ENOENT']) expect(isDirectIoRefusal(err(code))).toBe(false);
    expect(isDirectIoRefusal(undefined)).toBe(false);
  });
});
