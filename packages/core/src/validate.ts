import { createHash } from 'node:crypto';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WalApplier, readFileChunks, writeAt } from '@ls/wal';
import { CorruptDataError, LstreamError } from './errors.js';
import { readRange } from './fs-util.js';
import type { Replica } from './replica.js';
import { restore } from './restore.js';

/** How long validation waits for the replica to catch up with the database. */
const VALIDATION_WAIT_MS = 30_000;

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    for await (const chunk of fh.createReadStream({ highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** Copies all of the open file `src` (left open) to a new file at `dest`. */
async function copyOpenFile(src: FileHandle, dest: string): Promise<void> {
  const out = await open(dest, 'wx', 0o600);
  try {
    let at = 0;
    for await (const chunk of readFileChunks(src)) {
      await writeAt(out, chunk, at);
      at += chunk.length;
    }
  } finally {
    await out.close();
  }
}

/**
 * Restores `replica` into a temp file and compares it, byte for byte (SHA-256), with the database at
 * the same position, built from the database file plus the shadow WAL while checkpoints are paused.
 * Resolves true when they match. Unlike Litestream's CRC check it needs no RESTART checkpoint, so it
 * cannot report a false mismatch when a checkpoint is skipped.
 */
export async function validateReplica(replica: Replica, signal?: AbortSignal): Promise<boolean> {
  const db = replica.db;
  const dir = await mkdtemp(join(tmpdir(), 'lstream-validate-'));
  try {
    return await db.withSnapshotLock(async (pos, file) => {
      const wait = AbortSignal.timeout(VALIDATION_WAIT_MS);
      await replica.waitFor(pos, signal ? AbortSignal.any([signal, wait]) : wait);
      const restored = join(dir, 'restored.db');
      let result;
      try {
        result = await restore(replica.client, { outputPath: restored, generation: pos.generation, pos, signal });
      } catch (err) {
        // What the replica holds does not restore into a whole database: it does not match either.
        // (Only the replica's side: a corrupt local shadow WAL, below, is an error of its own.)
        if (!CorruptDataError.isInstance(err)) throw err;
        db.logger.error('validation: the replica does not restore', { db: db.path, replica: replica.name, error: String(err) });
        return false;
      }
      const reached = result.pos;
      if (reached.generation !== pos.generation || reached.index !== pos.index) {
        throw new LstreamError('EVALIDATE', `validation restored ${reached} but the database is at ${pos}`);
      }
      const expected = join(dir, 'expected.db');
      // Copied through the Db's descriptor: one of its own, closed after the copy, would drop the
      // locks SQLite's connections hold on the database (see database-file.ts).
      await copyOpenFile(file, expected);
      if (reached.offset > 32) {
        const applier = await WalApplier.open(expected, { writeThrough: true, fsync: false });
        try {
          await applier.apply(readRange(db.shadowWalPath(pos.generation, pos.index), 0, reached.offset));
          await applier.close();
        } catch (err) {
          await applier.abort();
          throw err;
        }
      }
      const [a, b] = await Promise.all([sha256File(restored), sha256File(expected)]);
      return a === b;
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
