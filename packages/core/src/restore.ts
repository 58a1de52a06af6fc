import { setMaxListeners } from 'node:events';
import { createRequire } from 'node:module';
import { link, mkdir, open, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import {
  CorruptDataError,
  WalApplier,
  decodeLz4Frame,
  directWritable,
  isDirectIoRefusal,
  openDirect,
  parseDatabaseHeader,
  readAt,
  releaseDecodedBlock,
  writeAt,
} from '@ls/wal';
import type { ReplicaClient } from './client.js';
import { InvalidArgumentError, LstreamError, throwIfAborted } from './errors.js';
import { snapshotKey, walSegmentKey, type SnapshotInfo, type WalSegmentInfo } from './layout.js';
import { noopLogger, type Logger } from './logger.js';
import { MAX_WAL_INDEX, Pos, isGenerationName } from './pos.js';
import { collect, listGenerations, listSnapshots, listWalSegments } from './replica-store.js';
import { exists, fsyncDir, statOrUndefined } from './fs-util.js';
import { withRetry } from './retry.js';

/** Segments downloaded at once by default (Litestream's default parallelism). */
export const RESTORE_PARALLELISM = 8;
/** Compressed bytes downloaded ahead of the apply step, at most. */
export const RESTORE_PREFETCH_BYTES = 16 * 1024 * 1024;
/** Tries per object before a restore gives up on it. */
export const RESTORE_ATTEMPTS = 5;

/** Raised when a replica holds no backup to restore (no generation, or no snapshot). */
export class NoBackupError extends LstreamError {
  constructor(message: string) {
    super('ENOBACKUP', message);
  }
}

/** Raised when the objects a restore needs are not all there: a missing index or a gap between segments. */
export class MissingSegmentError extends LstreamError {
  constructor(
    message: string,
    readonly key: string,
  ) {
    super('EMISSING', message);
  }
}

/**
 * Raised when the generation a restore needs has WAL segments but no snapshot (its snapshot was
 * removed, or never arrived): the replica holds backups, just none that restores to that state.
 */
export class MissingSnapshotError extends LstreamError {
  constructor(message: string) {
    super('ENOSNAPSHOT', message);
  }
}

/** Raised when a restore target (index, generation, timestamp) is not in the replica. */
export class TargetNotFoundError extends LstreamError {
  constructor(message: string) {
    super('ENOTARGET', message);
  }
}

/** Raised when the restored database fails `PRAGMA integrity_check`. */
export class IntegrityCheckError extends LstreamError {
  constructor(
    message: string,
    readonly problems: string[],
    options?: { cause?: unknown },
  ) {
    super('EINTEGRITY', message, options);
  }
}

/** Raised when the output path of a restore already exists. */
export class OutputExistsError extends LstreamError {
  constructor(
    readonly path: string,
    message = `${path} already exists; restore never overwrites a database: restore to another path (-o, outputPath) or move the file away`,
  ) {
    super('EEXIST', message);
  }

  /** The output path names a directory, not the database file to create. */
  static directory(path: string): OutputExistsError {
    return new OutputExistsError(path, `${path} is a directory; the output path names the database file to create (for example ${join(path, 'app.db')})`);
  }
}

/**
 * Raised when the restored database cannot be written at its output path (a full disk, a directory
 * in the path that is a file, no permission, a read-only file system). `code` is the system's
 * (ENOSPC, ENOTDIR, ...), `path` the output path, and `cause` the system error.
 */
export class RestoreOutputError extends LstreamError {
  constructor(
    readonly path: string,
    cause: NodeJS.ErrnoException,
  ) {
    const code = cause.code ?? 'EIO';
    super(code, `cannot write the restored database at ${path}: ${OUTPUT_PROBLEMS[code] ?? cause.message}`, { cause });
  }
}

/** What a system error writing the output means, and what to do about it. */
const OUTPUT_PROBLEMS: Record<string, string> = {
  ENOSPC: 'no space left on the device; free some, or restore to a path on another file system',
  EDQUOT: 'the disk quota is used up; free some, or restore to a path on another file system',
  ENOTDIR: 'a directory in the path is a file; restore to another path',
  EACCES: 'permission denied; restore as a user who may write there, or to another path',
  EPERM: 'operation not permitted; restore as a user who may write there, or to another path',
  EROFS: 'the file system is read-only; restore to a path on a writable one',
  EFBIG: 'the file is larger than the file system or a process limit (ulimit -f) allows',
  ENAMETOOLONG: 'the path is too long',
  ELOOP: 'too many symbolic links in the path',
  EIO: 'an input/output error on the device (it may be failing); restore to another path',
};

/** What to restore. With neither `index` nor `timestamp`, the latest state is restored. */
export interface RestoreTarget {
  /** Generation to restore from (default: the latest, or the one that was current at `timestamp`). */
  generation?: string;
  /** Restore through the end of this WAL index (requires nothing else; exclusive with `timestamp`). */
  index?: number;
  /** Restore to the last segment created at or before this time (segment granularity). */
  timestamp?: Date;
  /** Restore exactly up to the segments starting before this position (used by validation). */
  pos?: Pos;
}

/** A restore plan: which snapshot and segments, in apply order. */
export interface RestorePlan {
  generation: string;
  snapshot: SnapshotInfo;
  segments: WalSegmentInfo[];
  /** Compressed bytes to download. */
  bytes: number;
  /** Last WAL index applied (the snapshot's when there are no segments). */
  index: number;
}

/** Progress of a running restore. */
export interface RestoreProgress {
  downloadedBytes: number;
  totalBytes: number;
  appliedSegments: number;
  totalSegments: number;
}

/** Options of `restore`. */
export interface RestoreOptions extends RestoreTarget {
  outputPath: string;
  parallelism?: number;
  /** Run `PRAGMA integrity_check` on the result before it is renamed into place. */
  integrityCheck?: boolean;
  prefetchBytes?: number;
  signal?: AbortSignal;
  logger?: Logger;
  onProgress?: (p: RestoreProgress) => void;
}

/** What a restore did. */
export interface RestoreResult {
  plan: RestorePlan;
  /** Position the restored database corresponds to. */
  pos: Pos;
  /** Size of the restored database file. */
  dbBytes: number;
}

function timeBounds(snaps: SnapshotInfo[], segs: WalSegmentInfo[]): { start: number; end: number } | undefined {
  // A loop, not Math.min(...): a generation can hold more objects than a call has arguments.
  let start = Infinity;
  let end = -Infinity;
  for (const list of [snaps, segs]) {
    for (const x of list) {
      const t = x.createdAt.getTime();
      if (t < start) start = t;
      if (t > end) end = t;
    }
  }
  return end === -Infinity ? undefined : { start, end };
}

/**
 * Works out what a restore needs: the generation (given, latest updated, or the one current at
 * the timestamp), the latest snapshot at or before the target, and every segment from it to the
 * target. Rejects with NoBackupError, TargetNotFoundError or MissingSegmentError (naming the object)
 * when the replica cannot satisfy it.
 */
export async function planRestore(client: ReplicaClient, target: RestoreTarget, signal?: AbortSignal): Promise<RestorePlan> {
  if (target.index !== undefined && target.timestamp !== undefined) {
    throw new InvalidArgumentError('restore to an index or to a timestamp, not both');
  }
  if (target.index !== undefined && target.generation === undefined) {
    throw new InvalidArgumentError('restoring to an index needs a generation too (-generation); list them with `lstream generations`');
  }
  if (target.index !== undefined && !(Number.isInteger(target.index) && target.index >= 0 && target.index <= MAX_WAL_INDEX)) {
    throw new InvalidArgumentError(`index must be a WAL index from 0 to ${MAX_WAL_INDEX} (0x7fffffff), got ${String(target.index)}`);
  }
  if (target.timestamp !== undefined && !(target.timestamp instanceof Date && Number.isFinite(target.timestamp.getTime()))) {
    throw new InvalidArgumentError(`timestamp must be a valid Date, got ${String(target.timestamp)}`);
  }
  if (target.generation !== undefined && !isGenerationName(target.generation)) {
    throw new InvalidArgumentError(`'${target.generation}' is not a generation name (16 lowercase hex digits)`);
  }
  const gens = await listGenerations(client, { signal });
  if (gens.length === 0) throw new NoBackupError('no backups found: the replica holds no generation');
  let candidates = gens;
  if (target.generation !== undefined) {
    if (!gens.includes(target.generation)) {
      throw new TargetNotFoundError(`generation ${target.generation} not found in the replica; it has ${gens.join(', ')}`);
    }
    candidates = [target.generation];
  }
  type Candidate = { gen: string; snaps: SnapshotInfo[]; segs: WalSegmentInfo[]; start: number; end: number };
  // The generation updated last, of those started at or before the timestamp when there is one.
  // So, as Litestream picks, a generation whose time span holds the timestamp wins over any that
  // ended before it; when none holds it (it falls between generations or after all of them), the
  // one updated last before it: its end is the database's state at that time, as far as the
  // replica knows (Litestream refuses such a timestamp).
  let best: Candidate | undefined;
  let earliest: number | undefined;
  const ts = target.timestamp?.getTime();
  // A generation with segments but no snapshot competes too: when it is the one the target needs
  // (its first snapshot is still uploading, or was lost), an older generation is not a stand-in.
  for (const gen of candidates) {
    const snaps = await collect(listSnapshots(client, gen, { signal }));
    const segs = await collect(listWalSegments(client, gen, { signal }));
    const bounds = timeBounds(snaps, segs);
    if (!bounds) continue;
    const c: Candidate = { gen, snaps, segs, ...bounds };
    earliest = Math.min(earliest ?? c.start, c.start);
    if (ts !== undefined && c.start > ts) continue;
    if (!best || c.end > best.end) best = c;
  }
  if (best && best.snaps.length === 0) {
    const which = ts !== undefined ? 'the generation current at the timestamp' : 'the generation updated last';
    const older = target.generation === undefined ? '; pass -generation to restore an older one (`lstream generations` lists them)' : '';
    throw new MissingSnapshotError(
      `generation ${best.gen} (${which}, at ${new Date(best.end).toISOString()}) has WAL segments but no snapshot, so it cannot be restored ` +
        `(its snapshot was removed, or never arrived)${older}`,
    );
  }
  if (!best) {
    if (target.timestamp && earliest !== undefined) {
      // Nothing was backed up yet at that time: as Litestream, "no backup" (which -if-replica-exists
      // accepts), not a bad target.
      throw new NoBackupError(
        `no backup at or before ${target.timestamp.toISOString()}: the earliest is from ${new Date(earliest).toISOString()}`,
      );
    }
    throw new NoBackupError(`no snapshots found in ${target.generation ? `generation ${target.generation}` : 'any generation'}`);
  }
  const { gen, snaps, segs } = best;
  let snapshot: SnapshotInfo | undefined;
  if (target.index !== undefined) snapshot = snaps.filter((s) => s.index <= target.index!).at(-1);
  else if (target.pos !== undefined) snapshot = snaps.filter((s) => s.index <= target.pos!.index).at(-1);
  else if (target.timestamp !== undefined) {
    const ts = target.timestamp.getTime();
    snapshot = snaps.filter((s) => s.createdAt.getTime() <= ts).at(-1);
  } else snapshot = snaps.at(-1);
  if (!snapshot) {
    const what = target.index !== undefined ? `index ${target.index.toString(16).padStart(8, '0')}` : `${target.timestamp?.toISOString()}`;
    throw new TargetNotFoundError(`generation ${gen} has no snapshot at or before ${what}`);
  }
  const chosen: WalSegmentInfo[] = [];
  for (const s of segs) {
    if (s.index < snapshot.index) continue;
    if (target.index !== undefined && s.index > target.index) break;
    if (target.pos !== undefined && (s.index > target.pos.index || (s.index === target.pos.index && s.offset >= target.pos.offset))) break;
    if (target.timestamp !== undefined && s.createdAt.getTime() > target.timestamp.getTime()) break;
    chosen.push(s);
  }
  const lastIndex = chosen.at(-1)?.index ?? snapshot.index;
  if (target.index !== undefined && lastIndex < target.index) {
    const latest = segs.at(-1)?.index ?? snapshot.index;
    throw new TargetNotFoundError(
      `index ${target.index.toString(16).padStart(8, '0')} not found in generation ${gen}; its latest index is ${latest.toString(16).padStart(8, '0')}`,
    );
  }
  // Every index from the snapshot's to the last one applied must be in the replica from offset 0.
  // The replica's segments are checked, not only those chosen: a timestamp between the snapshot and
  // its index's first segment restores the snapshot alone, since that segment came later. The
  // snapshot's index may also have no segment at all when it wrote no frame: then no later index
  // can exist either (a WAL restarts only after frames were checkpointed), so a later segment or
  // snapshot means the snapshot's index had segments, and they are missing.
  const laterData = segs.some((s) => s.index > snapshot.index) || snaps.some((s) => s.index > snapshot.index);
  for (let index = snapshot.index, i = segs.findIndex((s) => s.index >= snapshot.index); index <= lastIndex; index++) {
    const first = i >= 0 ? segs[i] : undefined;
    if (!first || first.index !== index) {
      if (index === snapshot.index && chosen.length === 0 && !laterData) break;
      throw new MissingSegmentError(
        `WAL index ${index.toString(16).padStart(8, '0')} of generation ${gen} is missing from the replica`,
        walSegmentKey(gen, index, 0),
      );
    }
    if (first.offset !== 0) {
      throw new MissingSegmentError(
        `the first segment of WAL index ${index.toString(16).padStart(8, '0')} is missing (it must start at offset 0)`,
        walSegmentKey(gen, index, 0),
      );
    }
    while (segs[i] && segs[i]!.index === index) i++;
  }
  return {
    generation: gen,
    snapshot,
    segments: chosen,
    bytes: snapshot.size + chosen.reduce((a, s) => a + s.size, 0),
    index: lastIndex,
  };
}

/** Names the replica object corrupt data was found in (other errors pass through unchanged). */
function inObject(err: unknown, key: string): unknown {
  return CorruptDataError.isInstance(err) ? err.inObject(key) : err;
}

/** A downloaded object as the chunks it arrived in (the decoder reads across them; no concatenation). */
interface Downloaded {
  chunks: Buffer[];
  bytes: number;
}

async function readChunks(stream: Readable): Promise<Downloaded> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const c of stream) {
    chunks.push(c as Buffer);
    bytes += (c as Buffer).length;
  }
  return { chunks, bytes };
}

/**
 * Restores a database from a replica into `outputPath`: the snapshot, then every segment up to the
 * target, applied directly (no SQLite checkpoint), downloading up to `parallelism` objects ahead with
 * retries per object. Every LZ4 content checksum and the WAL checksum chain are verified; the result is
 * written to `<out>.tmp`, fsynced and renamed. On any failure nothing is left at `outputPath`.
 */
export async function restore(client: ReplicaClient, options: RestoreOptions): Promise<RestoreResult> {
  try {
    return await restoreNow(client, options);
  } catch (err) {
    // Replica clients report their own failures as LstreamErrors; a bare system error comes from
    // writing the output (the file system's message names no path, or the temp file only).
    if (!LstreamError.isInstance(err) && isSystemError(err)) throw new RestoreOutputError(resolve(options.outputPath), err);
    throw err;
  }
}

function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  const e = err as NodeJS.ErrnoException | undefined;
  return e instanceof Error && typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code) && typeof e.syscall === 'string';
}

async function restoreNow(client: ReplicaClient, options: RestoreOptions): Promise<RestoreResult> {
  if (options.parallelism !== undefined && !(Number.isInteger(options.parallelism) && options.parallelism >= 1)) {
    throw new InvalidArgumentError(`parallelism must be a whole number of 1 or more, got ${String(options.parallelism)}`);
  }
  const out = resolve(options.outputPath);
  const tmp = `${out}.tmp`;
  const logger = options.logger ?? noopLogger;
  const signal = options.signal;
  const existing = await statOrUndefined(out);
  if (existing?.isDirectory()) throw OutputExistsError.directory(out);
  if (existing) throw new OutputExistsError(out);
  for (const suffix of ['-wal', '-shm', '-journal']) {
    // SQLite would replay a stale WAL or journal onto the restored file the first time it opens it.
    if (await exists(`${out}${suffix}`)) {
      throw new OutputExistsError(
        `${out}${suffix}`,
        `${out}${suffix} exists and belongs to an older database at ${out}; SQLite would apply it to the restored file. Remove it, or restore to another path`,
      );
    }
  }
  const leftovers: string[] = [];
  for (const p of [tmp, `${tmp}-wal`, `${tmp}-shm`]) if (await exists(p)) leftovers.push(p);
  if (leftovers.length > 0) {
    throw new InvalidArgumentError(
      `${leftovers.join(', ')} ${leftovers.length > 1 ? 'exist' : 'exists'}: another restore to ${out} is running, or one was killed; ` +
        `if none is running, remove ${leftovers.length > 1 ? 'them' : 'it'} (rm ${leftovers.map((p) => `'${p}'`).join(' ')}) and restore again`,
    );
  }
  const plan = await planRestore(client, options, signal);
  // Stops downloads still in flight when the restore fails.
  const internal = new AbortController();
  const dlSignal = signal ? AbortSignal.any([signal, internal.signal]) : internal.signal;
  // Every download, retry and resumed read listens on it: well over Node's default warning level of 10.
  setMaxListeners(0, dlSignal);
  const parallelism = options.parallelism ?? RESTORE_PARALLELISM;
  const prefetch = Math.max(1, options.prefetchBytes ?? RESTORE_PREFETCH_BYTES);
  const progress: RestoreProgress = { downloadedBytes: 0, totalBytes: plan.bytes, appliedSegments: 0, totalSegments: plan.segments.length };
  const report = () => options.onProgress?.({ ...progress });

  const fetchObject = (key: string) =>
    withRetry(async () => readChunks(await client.open(key, { signal: dlSignal })), {
      attempts: RESTORE_ATTEMPTS,
      signal: dlSignal,
      onRetry: (err, attempt, delayMs) => logger.warn('download failed; retrying', { key, attempt: attempt + 1, delayMs, error: String(err) }),
    });

  let applier: WalApplier | undefined;
  let madeDir: string | undefined;
  try {
    // As Litestream does, the output's directory is created when missing (a container restoring to
    // /data/app.db before anything made /data).
    madeDir = await mkdir(dirname(out), { recursive: true });
    // Snapshot: streamed and decompressed straight into the file; a failed try starts over.
    await withRetry(
      async () => {
        const raw = await client.open(snapshotKey(plan.generation, plan.snapshot.index), { signal: dlSignal });
        let got = 0;
        const counted = async function* () {
          for await (const c of raw) {
            got += (c as Buffer).length;
            yield c as Buffer;
          }
        };
        let fh;
        try {
          fh = await open(tmp, 'w', 0o644);
        } catch (err) {
          raw.destroy();
          throw err;
        }
        try {
          await writeDecoded(fh, decodeLz4Frame(counted(), { blocksGivenBack: true }));
        } catch (err) {
          raw.destroy();
          throw inObject(err, snapshotKey(plan.generation, plan.snapshot.index));
        } finally {
          await fh.close();
        }
        progress.downloadedBytes += got;
        report();
        // A snapshot that decodes (a valid LZ4 frame) but is no SQLite database is named now,
        // rather than as the temp file the WAL applier would find it in.
        await checkSnapshotHeader(tmp, snapshotKey(plan.generation, plan.snapshot.index));
      },
      {
        attempts: RESTORE_ATTEMPTS,
        signal,
        onRetry: (err, attempt, delayMs) =>
          logger.warn('snapshot download failed; retrying', { generation: plan.generation, index: plan.snapshot.index, attempt: attempt + 1, delayMs, error: String(err) }),
      },
    );

    // Segments: a window of downloads runs ahead of the apply step, bounded by count and bytes.
    const segs = plan.segments;
    const downloads: (Promise<Downloaded> | undefined)[] = new Array(segs.length);
    let started = 0;
    let buffered = 0;
    const pump = () => {
      while (started < segs.length && started - progress.appliedSegments < parallelism) {
        const s = segs[started]!;
        if (buffered > 0 && buffered + s.size > prefetch) break;
        buffered += s.size;
        const p = fetchObject(walSegmentKey(s.generation, s.index, s.offset)).then((b) => {
          progress.downloadedBytes += b.bytes;
          report();
          return b;
        });
        p.catch(() => undefined); // observed when its turn comes; avoids an unhandled rejection meanwhile
        downloads[started++] = p;
      }
    };
    pump();

    // The temporary file is removed when anything fails, so pages go to it as they are read
    // (writeThrough) instead of waiting in memory for their transaction's commit frame.
    applier = await WalApplier.open(tmp, { writeThrough: true });
    let pos = new Pos(plan.generation, plan.snapshot.index, 0);
    let i = 0;
    while (i < segs.length) {
      const index = segs[i]!.index;
      let expected = 0;
      const source = async function* (): AsyncGenerator<Uint8Array> {
        while (i < segs.length && segs[i]!.index === index) {
          throwIfAborted(signal);
          const s = segs[i]!;
          if (s.offset !== expected) {
            const missing = walSegmentKey(s.generation, index, expected);
            throw new MissingSegmentError(
              `segment gap in generation ${plan.generation} index ${index.toString(16).padStart(8, '0')}: expected one at offset ${expected}, found ${s.offset}; ${missing} is missing from the replica. Restore to a point before it (-timestamp${index > 0 ? `, or -index ${(index - 1).toString(16)} with a snapshot at or before that index` : ''}), or from another replica`,
              missing,
            );
          }
          const raw = await downloads[i]!;
          downloads[i] = undefined;
          let n = 0;
          try {
            // Decoded blocks are lent to the applier, which writes pages straight from them and gives
            // each back (releaseDecodedBlock) once written, for the decoder to reuse.
            for await (const chunk of decodeLz4Frame(raw.chunks, { blocksGivenBack: true })) {
              n += chunk.length;
              yield chunk;
            }
          } catch (err) {
            throw inObject(err, walSegmentKey(s.generation, s.index, s.offset));
          }
          buffered -= s.size;
          expected = s.offset + n;
          pos = new Pos(plan.generation, index, expected);
          i++;
          progress.appliedSegments++;
          report();
          pump();
        }
      };
      const first = i;
      try {
        await applier.apply(source(), { release: releaseDecodedBlock });
      } catch (err) {
        // A frame that breaks the WAL chain: the segment holding that offset of the index.
        if (CorruptDataError.isInstance(err) && err.offset !== undefined) {
          const at = err.offset;
          const s = segs.slice(first).filter((x) => x.index === index && x.offset <= at).at(-1);
          if (s) throw inObject(err, walSegmentKey(s.generation, s.index, s.offset));
        }
        throw err;
      }
    }
    await applier.close();
    applier = undefined;

    await checkWholeDatabase(tmp, snapshotKey(plan.generation, plan.snapshot.index));
    if (options.integrityCheck) await checkIntegrity(tmp);
    const fh2 = await open(tmp, 'r+');
    try {
      await fh2.sync();
    } finally {
      await fh2.close();
    }
    const dbBytes = (await stat(tmp)).size;
    // link fails if the output appeared meanwhile, where rename would replace it.
    try {
      await link(tmp, out);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new OutputExistsError(out);
      throw err;
    }
    await rm(tmp, { force: true });
    await fsyncDir(dirname(out));
    return { plan, pos, dbBytes };
  } catch (err) {
    internal.abort();
    if (applier) await applier.abort().catch(() => undefined);
    await Promise.all([tmp, `${tmp}-wal`, `${tmp}-shm`].map((p) => rm(p, { force: true })));
    // The directories this restore made for the output go too, as long as they are empty.
    if (madeDir !== undefined) {
      for (let d = dirname(out); d.startsWith(madeDir); d = dirname(d)) {
        if (!(await rmdir(d).then(() => true, () => false)) || d === madeDir) break;
      }
    }
    throw err;
  }
}

/**
 * Checks that the snapshot just written to `path` starts with a SQLite header (an empty one is left
 * to the WAL applier), naming the replica object `snapshot` when it does not: an object that decodes
 * as LZ4 but is no database would otherwise be reported as the temp file it was written to.
 */
async function checkSnapshotHeader(path: string, snapshot: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    if ((await fh.stat()).size === 0) return;
    if (!parseDatabaseHeader(await readAt(fh, 0, 100))) {
      const err = new CorruptDataError(`the snapshot ${snapshot} is not a SQLite database (its decoded content has no SQLite header): it is damaged, or not a snapshot`, { offset: 0 });
      err.object = snapshot;
      throw err;
    }
  } finally {
    await fh.close();
  }
}

/**
 * Checks that the restored file at `path` is a whole SQLite database: its header, a page size SQLite
 * uses, whole pages, and at least the pages its header counts (when that count is valid). A snapshot
 * cut short by its writer still makes a valid LZ4 frame; without this, it would restore into a
 * corrupt database that only `integrity_check` would catch. (Checked after the WAL is applied: a
 * snapshot read while another process checkpointed may hold page 1 ahead of the rest, which its
 * WAL then completes.)
 */
async function checkWholeDatabase(path: string, snapshot: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size === 0) return;
    const fail = (why: string): never => {
      throw new CorruptDataError(`the restored database is not whole: ${why}; the snapshot ${snapshot} is likely truncated or damaged`);
    };
    const header = parseDatabaseHeader(await readAt(fh, 0, 100));
    if (!header) return fail('it does not start with a SQLite header');
    const ps = header.pageSize;
    if (ps < 512 || (ps & (ps - 1)) !== 0) fail(`its header gives a page size of ${ps}`);
    if (size % ps !== 0) fail(`it holds ${size} bytes, not a whole number of ${ps}-byte pages`);
    const pages = header.pageCount;
    if (pages !== undefined && size < pages * ps) {
      fail(`its header counts ${pages} pages of ${ps} bytes (${pages * ps} bytes), but it holds ${size} bytes`);
    }
  } finally {
    await fh.close();
  }
}

/** Runs `PRAGMA integrity_check` on the database at `path`; rejects with IntegrityCheckError unless it says ok. */
export async function checkIntegrity(path: string): Promise<void> {
  const require = createRequire(import.meta.url);
  const Database = require('better-sqlite3') as typeof import('better-sqlite3');
  let rows: string[];
  try {
    const db = new Database(path, { fileMustExist: true });
    try {
      rows = (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check);
    } finally {
      db.close();
    }
  } catch (err) {
    // SQLite may refuse the file outright ("database disk image is malformed", "file is not a
    // database"): that is the check failing too.
    const reason = (err as Error).message;
    throw new IntegrityCheckError(`${path}: integrity check failed: ${reason}`, [reason], { cause: err });
  }
  if (!(rows.length === 1 && rows[0] === 'ok')) {
    throw new IntegrityCheckError(`${path}: integrity check failed: ${rows.slice(0, 5).join('; ')}`, rows);
  }
}

/** Decoded snapshot blocks being written or waiting their turn to be, at once. */
const SNAPSHOT_WRITES_IN_FLIGHT = 4;
/** Bytes written through the page cache between two background flushes of the file to disk. */
const SNAPSHOT_FLUSH_EVERY = 64 * 1024 * 1024;

/**
 * Writes `blocks` one after another into the file open as `fh` from offset 0, each given
 * back to the decoder once written. Writes overlap the decoding of the next blocks.
 *
 * Where the file system allows, blocks go to disk directly (O_DIRECT, see @ls/wal's direct-io.ts)
 * from the decoder's aligned memory, several at once: through the page cache, every byte would first
 * be copied into fresh cache pages and written back later, on the same cores that decompress. A block
 * that cannot go directly (a block stored uncompressed, the tail of a database with pages under
 * 4 KiB) goes through `fh`, one write at a time (writes to one file through the page cache take its
 * inode lock in turn anyway, and four at once spent an eighth of the restore's CPU spinning on that
 * lock), and `fh` is flushed to disk in the background every 64 MiB, so the final fsync finds little
 * left to write. A 1 GiB snapshot restored here (2 cores, ext4 on a virtual disk) in 0.59-0.90 s
 * directly and 1.08-1.95 s through the page cache, alternating runs; direct writes also spared ~40% of
 * the restore's CPU.
 */
async function writeDecoded(fh: FileHandle, blocks: AsyncIterable<Buffer>): Promise<void> {
  const inflight = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  let flushing: Promise<void> = Promise.resolve();
  let off = 0;
  let sinceFlush = 0;
  const directHandle = await openDirect(fh);
  let direct = directHandle !== undefined;
  const track = (p: Promise<unknown>) => {
    const q: Promise<void> = p.then(
      () => void inflight.delete(q),
      (err: unknown) => {
        inflight.delete(q);
        failure ??= { err };
      },
    );
    inflight.add(q);
  };
  // The last write through the page cache: the next one starts when it has ended.
  let previous: Promise<unknown> = Promise.resolve();
  const writeBuffered = (block: Buffer, at: number): Promise<void> => {
    sinceFlush += block.length;
    const written = previous.then(() => (failure ? undefined : writeAt(fh, block, at)));
    previous = written.catch(() => undefined);
    return written;
  };
  const write = async (block: Buffer, at: number): Promise<void> => {
    if (failure) return;
    if (direct && directWritable(block, at)) {
      try {
        return await writeAt(directHandle!, block, at);
      } catch (err) {
        // Accepted at open, refused at the first write (some FUSE and network file systems): the
        // page cache takes this block and every later one.
        if (!isDirectIoRefusal(err)) throw err;
        direct = false;
      }
    }
    return writeBuffered(block, at);
  };
  try {
    for await (const block of blocks) {
      if (failure) break;
      // Once written, the block's memory goes back to the decoder for a later block.
      track(write(block, off).then(() => releaseDecodedBlock(block)));
      off += block.length;
      if (sinceFlush >= SNAPSHOT_FLUSH_EVERY) {
        sinceFlush = 0;
        await flushing;
        flushing = fh.datasync();
        track(flushing);
      }
      while (inflight.size >= SNAPSHOT_WRITES_IN_FLIGHT && !failure) await Promise.race(inflight);
    }
  } finally {
    await Promise.all(inflight);
    // Its writes have all ended; a failure to close it must not hide an error on its way out.
    await directHandle?.close().catch((err: unknown) => {
      failure ??= { err };
    });
  }
  if (failure) throw failure.err;
}
