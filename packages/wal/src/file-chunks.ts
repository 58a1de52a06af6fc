import { open, type FileHandle } from 'node:fs/promises';
import { allocHuge } from './huge-pages.js';
import { SpareBuffers } from './spare-buffers.js';

/**
 * Reads up to `length` bytes at `position` (fewer only at the end of the file: a read that returns
 * less is continued), into `into` when it is large enough.
 */
export async function readAt(fh: FileHandle, position: number, length: number, into?: Buffer): Promise<Buffer> {
  const buf = into && into.length >= length ? into : Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/**
 * Writes all of `data` at `position`, continuing after a short write (as a nearly full disk may
 * make); a write that makes no progress is an error.
 */
export async function writeAt(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await fh.write(data, done, data.byteLength - done, position + done);
    if (bytesWritten <= 0) throw new Error(`short write at offset ${position + done}: the disk may be full`);
    done += bytesWritten;
  }
}

/** Options for `readFileChunks`. */
export interface ReadFileChunksOptions {
  /** Bytes per chunk (default 4 MiB). */
  chunkBytes?: number;
  /** First byte to read (default 0). */
  start?: number;
  /** Byte after the last to read (default: the end of the file). */
  end?: number;
}

/**
 * Reads a file (a path, or an open handle, read at explicit positions and left open), or its byte
 * range [start, end), as a stream of chunks held in two buffers that are
 * reused: the next chunk is read while the caller works on the current one. A chunk stays valid only
 * until the caller asks for the next one; its memory is then refilled. For consumers that keep
 * nothing past that point, such as `WalApplier.apply`; anything else must copy what it keeps.
 *
 * Compared with `fs.createReadStream`, nothing is allocated per chunk: on a 70 MiB WAL that is the
 * difference between 20 ms and 60–75 ms spent reading, most of it page faults on fresh memory.
 */
export function readFileChunks(file: string | FileHandle, options: ReadFileChunksOptions = {}): AsyncGenerator<Buffer, void, undefined> {
  const buffers = [Buffer.alloc(0), Buffer.alloc(0)];
  let next = 0;
  return fileChunks(file, options, (want) => {
    if (buffers[next]!.length < want) buffers[next] = Buffer.allocUnsafeSlow(want);
    const buffer = buffers[next]!;
    next ^= 1;
    return buffer;
  });
}

/** A file read as chunks that are lent to the caller (see `lendFileChunks`). */
export interface LentFileChunks {
  /** The chunks in file order. Each one's memory is the caller's until it is passed to `release`. */
  readonly chunks: AsyncGenerator<Buffer, void, undefined>;
  /**
   * Gives a chunk back, once nothing reads it any more: its memory may then hold a later chunk.
   * Anything else (a value this reader did not lend, a chunk given back twice) is ignored.
   */
  readonly release: (chunk: Uint8Array) => void;
}

/**
 * Reads a file (a path, or an open handle, left open), or its byte range [start, end), as chunks
 * that stay valid until the caller gives
 * them back, for a consumer that keeps parts of chunks in place instead of copying them:
 * `WalApplier.apply(chunks, { release })` keeps pages where they were read. The next chunk is read
 * while the caller works on the current one; its memory is a chunk given back, or new. A consumer
 * that holds many chunks (the applier holds up to its 32 MiB buffer) makes it read into fresh memory
 * often: chunks are allocated on transparent huge pages where the kernel allows (see allocHuge),
 * which on the WAL apply benchmark cut its page faults from ~13,000 to ~3,000.
 */
export function lendFileChunks(file: string | FileHandle, options: ReadFileChunksOptions = {}): LentFileChunks {
  // Kept however many: no more than the caller held at once, and gone with this reader.
  const spares = new SpareBuffers(Infinity, 0, allocHuge);
  const lent = new Map<Uint8Array, Buffer>();
  const chunks = fileChunks(
    file,
    options,
    (want, chunkBytes) => spares.take(Math.max(want, chunkBytes)),
    (view, buffer) => lent.set(view, buffer),
  );
  const release = (chunk: Uint8Array): void => {
    const buffer = lent.get(chunk);
    if (buffer === undefined) return;
    lent.delete(chunk);
    spares.give(buffer);
  };
  return { chunks, release };
}

/**
 * Reads [start, end) of `file` (a path, or an open handle, which is left open) in chunks, one read
 * ahead, each into the buffer `take(bytes, chunkBytes)` returns; `yielded` hears of each chunk
 * yielded and the buffer it is in.
 */
async function* fileChunks(
  file: string | FileHandle,
  options: ReadFileChunksOptions,
  take: (bytes: number, chunkBytes: number) => Buffer,
  yielded?: (view: Buffer, buffer: Buffer) => void,
): AsyncGenerator<Buffer, void, undefined> {
  const chunkBytes = options.chunkBytes ?? 4 * 1024 * 1024;
  if (!Number.isInteger(chunkBytes) || chunkBytes <= 0) throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
  const fh = typeof file === 'string' ? await open(file, 'r') : file;
  let pending: Promise<{ bytesRead: number; buffer: Buffer; want: number }> | undefined;
  try {
    let pos = options.start ?? 0;
    const end = options.end ?? (await fh.stat()).size;
    const readNext = () => {
      const want = Math.min(chunkBytes, end - pos);
      if (want <= 0) return undefined;
      const buffer = take(want, chunkBytes);
      const p = readAt(fh, pos, want, buffer).then((got) => ({ bytesRead: got.length, buffer, want }));
      pos += want;
      return p;
    };
    pending = readNext();
    while (pending) {
      const { bytesRead, buffer, want } = await pending;
      pending = undefined;
      if (bytesRead === 0) return;
      // Read ahead while the caller works on this chunk (unless the file ended early: it shrank
      // while being read, and what it holds is all there is). Two reads ahead for lent chunks,
      // faulting fresh memory on two threads, measured no faster.
      if (bytesRead === want) pending = readNext();
      const view = buffer.subarray(0, bytesRead);
      yielded?.(view, buffer);
      yield view;
    }
  } finally {
    // A read-ahead still in flight when the caller stops must end before its file handle closes;
    // its result, or its failure, is for a chunk nobody asked for.
    await pending?.catch(() => undefined);
    if (typeof file === 'string') await fh.close();
  }
}
