import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { nativeAlignGap } from './lz4-native.js';

/**
 * Direct I/O (Linux's O_DIRECT): writes that go from the caller's memory to the disk without passing
 * through the page cache. A restore writes a whole database once and then fsyncs it: through the page
 * cache, every byte is first copied into fresh cache pages and later written back by the kernel, both
 * on the same cores that decompress; written directly, the disk takes the decoded blocks as they are.
 *
 * Direct writes need the memory, the file position and the length to be multiples of the device's
 * block size; DIRECT_IO_ALIGN (4096) covers every common device. Memory is aligned only when the
 * binding (native/lz4-native.c) can tell addresses, which JavaScript cannot.
 * LSTREAM_DIRECT_IO=off turns direct writes off (every write then goes through the page cache).
 */
export const DIRECT_IO_ALIGN = 4096;

/** Direct writes can be tried here: Linux, the binding built, and not turned off. */
export function directIoAvailable(): boolean {
  return constants.O_DIRECT !== undefined && process.platform === 'linux' && nativeAlignGap() !== undefined && process.env.LSTREAM_DIRECT_IO !== 'off';
}

/**
 * A buffer of `bytes` whose memory starts at a multiple of DIRECT_IO_ALIGN when the binding can say
 * where it is (a view into a slightly larger allocation), else a plain one. It is its own
 * ArrayBuffer's only view, starting at `byteOffset` and running to the ArrayBuffer's end.
 */
export function allocAligned(bytes: number): Buffer {
  const gapOf = nativeAlignGap();
  if (!gapOf || bytes === 0) return Buffer.allocUnsafeSlow(bytes);
  const raw = Buffer.allocUnsafeSlow(bytes + DIRECT_IO_ALIGN);
  const gap = gapOf(raw, DIRECT_IO_ALIGN);
  return raw.subarray(gap);
}

/** Whether a direct write of `data` at `position` meets the alignment direct I/O needs. */
export function directWritable(data: Uint8Array, position: number): boolean {
  const gapOf = nativeAlignGap();
  return (
    gapOf !== undefined &&
    data.byteLength > 0 &&
    data.byteLength % DIRECT_IO_ALIGN === 0 &&
    position % DIRECT_IO_ALIGN === 0 &&
    gapOf(data, DIRECT_IO_ALIGN) === 0
  );
}

/**
 * True for an error with which a file system refuses direct I/O, at open or at the first write:
 * EINVAL (tmpfs before Linux 6.6, most that refuse it) or ENOTSUP (which FUSE servers may answer).
 */
export function isDirectIoRefusal(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EINVAL' || code === 'ENOTSUP' || code === 'EOPNOTSUPP';
}

/**
 * Opens the file open as `fh` a second time, for direct writes, or returns undefined where direct I/O
 * is not available or the file system refuses it (see isDirectIoRefusal). It is reopened through
 * /proc/self/fd, so both handles are sure to reach the same file even if its path now names another;
 * without /proc, direct I/O is not used. Writes through the two handles may be mixed, in different
 * ranges: the kernel keeps the page cache coherent. Direct writes are durable only after an fsync of
 * the file, as ordinary ones.
 */
export async function openDirect(fh: FileHandle): Promise<FileHandle | undefined> {
  if (!directIoAvailable()) return undefined;
  try {
    return await open(`/proc/self/fd/${fh.fd}`, constants.O_WRONLY | constants.O_DIRECT);
  } catch (err) {
    if (isDirectIoRefusal(err) || (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
