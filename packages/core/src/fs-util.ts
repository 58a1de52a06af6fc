// File helpers the engine shares (db, replica, restore, validate). Internal: not exported by the package.
import { open, rename, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readAt, readFileChunks } from '@ls/wal';
import { ReplicaError } from './errors.js';

/** Bytes read per call when a shadow WAL range is streamed. */
const RANGE_CHUNK_BYTES = 1024 * 1024;

/** Returns the file's stats (bigint), or undefined when it does not exist. */
export async function statOrUndefined(path: string) {
  try {
    return await stat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Returns true when `path` exists. */
export async function exists(path: string): Promise<boolean> {
  return (await statOrUndefined(path)) !== undefined;
}

/** Reads up to `length` bytes at `position` of the file at `path`; undefined when the file does not exist. */
export async function readFileRange(path: string, position: number, length: number): Promise<Buffer | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return await readAt(fh, position, length);
  } finally {
    await fh.close();
  }
}

/**
 * Streams bytes `start` to `end` of a shadow WAL file in chunks. Throws ReplicaError when the file
 * ends before `end`. Chunks live in two buffers that are refilled (see readFileChunks): a chunk is
 * valid until the next one is asked for, which suits the LZ4 encoder and the WAL applier.
 */
export async function* readRange(path: string, start: number, end: number): AsyncGenerator<Buffer> {
  let off = start;
  for await (const chunk of readFileChunks(path, { start, end, chunkBytes: RANGE_CHUNK_BYTES })) {
    off += chunk.length;
    yield chunk;
  }
  if (off < end) throw new ReplicaError(`${path}: shadow WAL ended at ${off}, expected ${end} bytes`);
}

/** fsyncs a directory, so a rename or create inside it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `path` through `<path>.tmp`, fsync, rename and a directory fsync. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}
