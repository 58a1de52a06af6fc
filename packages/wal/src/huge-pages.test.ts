import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { DIRECT_IO_ALIGN } from './direct-io.js';
import { HUGE_PAGE_BYTES, allocHuge } from './huge-pages.js';
import { lendFileChunks } from './file-chunks.js';
import { nativeAdviseHugePages, nativeAlignGap } from './lz4-native.js';

afterEach(() => {
  delete process.env.LSTREAM_HUGE_PAGES;
});

/** The kernel's transparent huge page mode ('always', 'madvise' or 'never'), or undefined where there is none. */
function thpMode(): string | undefined {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** Minor page faults taken while writing every byte of `b` once. */
function faultsTouching(b: Buffer): number {
  const before = process.resourceUsage().minorPageFault;
  b.fill(0x5a);
  return process.resourceUsage().minorPageFault - before;
}

const gapOf = nativeAlignGap();
const advise = nativeAdviseHugePages();

describe.runIf(gapOf !== undefined && advise !== undefined)('huge pages (with the binding)', () => {
  it('hands out memory that starts on a 2 MiB boundary (so also aligned for direct I/O), holding at least what was asked', () => {
    for (const n of [HUGE_PAGE_BYTES, 4 * 1024 * 1024, 4 * 1024 * 1024 + 17]) {
      const b = allocHuge(n);
      expect(b.length).toBeGreaterThanOrEqual(n);
      expect(gapOf!(b, HUGE_PAGE_BYTES)).toBe(0);
      expect(b.byteOffset + b.length).toBe(b.buffer.byteLength);
    }
  });

  it('gives small requests memory aligned for direct I/O, without huge pages', () => {
    for (const n of [1, 4096, HUGE_PAGE_BYTES - 1]) {
      const b = allocHuge(n);
      expect(b.length).toBeGreaterThanOrEqual(n);
      expect(gapOf!(b, DIRECT_IO_ALIGN)).toBe(0);
    }
  });

  it('advises only whole 2 MiB stretches inside a buffer', () => {
    const raw = Buffer.allocUnsafeSlow(3 * HUGE_PAGE_BYTES);
    const gap = gapOf!(raw, HUGE_PAGE_BYTES);
    const advised = advise!(raw);
    if (process.platform !== 'linux' || thpMode() === undefined) {
      expect(advised).toBe(0);
      return;
    }
    // An unaligned start loses the stretch it falls in: two whole ones are left, or three when aligned.
    expect(advised).toBe(gap === 0 ? 3 * HUGE_PAGE_BYTES : 2 * HUGE_PAGE_BYTES);
    expect(advise!(raw.subarray(gap + 1, gap + 1 + HUGE_PAGE_BYTES))).toBe(0);
  });

  // The point of it: fresh memory faulted in 2 MiB at a time. Where the kernel has transparent huge
  // pages turned off (mode 'never'), the advice is taken and nothing changes; the test says so.
  it.runIf(process.platform === 'linux' && (thpMode() === 'madvise' || thpMode() === 'always'))(
    'costs far fewer page faults to fill than ordinary memory, and LSTREAM_HUGE_PAGES=off turns it off',
    () => {
      const bytes = 16 * 1024 * 1024;
      const small = bytes / 4096;
      const huge = faultsTouching(allocHuge(bytes));
      process.env.LSTREAM_HUGE_PAGES = 'off';
      const plain = faultsTouching(allocHuge(bytes));
      // 8 huge pages against 4096 small ones; the kernel may fall back to small pages for a few
      // stretches when it finds no free 2 MiB of memory at once.
      expect(plain).toBeGreaterThan(small / 2);
      expect(huge).toBeLessThan(small / 4);
    },
  );
});

it('reads a file in lent chunks that are huge-page memory, byte for byte', async () => {
  const { mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'lstream-huge-'));
  try {
    const data = Buffer.alloc(9 * 1024 * 1024 + 123);
    for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE(i * 2654435761 >>> 0, i);
    const file = join(dir, 'f.bin');
    await writeFile(file, data);
    const { chunks, release } = lendFileChunks(file);
    const got: Buffer[] = [];
    for await (const c of chunks) {
      got.push(Buffer.from(c));
      if (gapOf && advise && c.length >= HUGE_PAGE_BYTES) expect(gapOf(c, HUGE_PAGE_BYTES)).toBe(0);
      release(c);
    }
    expect(Buffer.concat(got).equals(data)).toBe(true);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
