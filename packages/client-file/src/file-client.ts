import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { mkdir, open, readdir, rename, rm, rmdir, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import {
  AccessDeniedError,
  DeleteFailedError,
  NotFoundError,
  TEMP_SUFFIX,
  TransientError,
  assertValidKey,
  assertValidRange,
  assertValidPrefix,
  compareKeys,
  isAbortError,
  nextOrAbort,
  throwIfAborted,
  writeAt,
  type ClientCapabilities,
  type ListEntry,
  type ListOptions,
  type ObjectInfo,
  type OpenOptions,
  type PutOptions,
  type ReplicaClient,
} from '@ls/core';

/** Options of the file client. */
export interface FileReplicaClientOptions {
  /** Directory that holds the replica (created on first write). */
  root: string;
  /** fsync each object and its directory before a put resolves (default true). Turn off only for tests. */
  fsync?: boolean;
}

const RETRYABLE_CODES = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'EIO', 'EINTR']);
const DENIED_CODES = new Set(['EACCES', 'EPERM', 'EROFS']);
const MISSING_CODES = new Set(['ENOENT', 'ENOTDIR', 'EISDIR']);

function codeOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/** Maps a file-system error to the contract's typed errors; others pass through unchanged. */
function mapError(err: unknown, what: string): unknown {
  const code = codeOf(err);
  if (code && DENIED_CODES.has(code)) {
    const advice =
      code === 'EROFS'
        ? 'the file system is read-only (EROFS); remount it read-write or move the replica to a writable one'
        : `permission denied (${code}); check the owner and mode of the replica directory`;
    return new AccessDeniedError(`${what}: ${advice}`, { cause: err });
  }
  if (code && RETRYABLE_CODES.has(code)) return new TransientError(`${what}: ${code}`, { cause: err });
  return err;
}

/** A temporary file not written for this long belongs to a put that will never finish. */
export const STALE_TEMP_MS = 10 * 60_000;

/**
 * A ReplicaClient on a local directory. Writes go to a temporary file beside the target, are fsynced,
 * renamed into place and the directory fsynced, so a crash never leaves a partial object visible.
 * Temporary files (`*.tmp`) are never listed; those a killed process left behind are removed the
 * first time the client writes to their directory, once untouched for STALE_TEMP_MS.
 */
export class FileReplicaClient implements ReplicaClient {
  readonly type = 'file';
  readonly capabilities: Readonly<ClientCapabilities> = Object.freeze({
    listDelimiter: true,
    deleteMaxBatch: Number.MAX_SAFE_INTEGER,
    rangeRead: true,
    timestampResolutionMs: 1,
  });
  /** Absolute path of the replica directory. */
  readonly root: string;
  readonly #fsync: boolean;
  /** Directories whose leftover temporary files this client has removed (once per directory). */
  readonly #swept = new Set<string>();

  constructor(options: FileReplicaClientOptions) {
    this.root = resolve(options.root);
    this.#fsync = options.fsync ?? true;
  }

  #path(key: string): string {
    const p = resolve(this.root, ...key.split('/'));
    // Keys are validated first; this is a second fence so nothing is ever written outside the root.
    if (!p.startsWith(this.root + sep)) throw new Error(`key ${key} resolves outside ${this.root}`);
    return p;
  }

  async put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, options: PutOptions = {}): Promise<ObjectInfo> {
    assertValidKey(key);
    const { signal } = options;
    throwIfAborted(signal);
    const path = this.#path(key);
    const tmp = `${path}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`;
    let fh: FileHandle | undefined;
    try {
      await this.#sweep(dirname(path));
      fh = await this.#createTemp(tmp);
      if (body instanceof Uint8Array) await writeAt(fh, body, 0);
      else await this.#writeStream(fh, body, signal);
      throwIfAborted(signal);
      if (this.#fsync) await fh.sync();
      await fh.close();
      fh = undefined;
      await rename(tmp, path);
      if (this.#fsync) await syncDir(dirname(path));
      const st = await stat(path);
      return { key, size: st.size, createdAt: st.mtime };
    } catch (err) {
      await fh?.close().catch(() => {});
      await rm(tmp, { force: true }).catch(() => {});
      throw mapError(err, `writing ${key} under ${this.root}`);
    }
  }

  /**
   * Removes the temporary files a killed process left in `dir` (a snapshot's can be as large as the
   * database), the first time this client writes there. Only files untouched for STALE_TEMP_MS:
   * a put in progress writes to its file all along.
   */
  async #sweep(dir: string): Promise<void> {
    if (this.#swept.has(dir)) return;
    this.#swept.add(dir);
    // Tidying only: a leftover that cannot be removed (another user's, in a shared directory) is no
    // reason to fail this put, which reports whatever is really wrong with the directory itself.
    const names = await readdir(dir).catch(() => [] as string[]);
    const cutoff = Date.now() - STALE_TEMP_MS;
    for (const name of names) {
      if (!name.endsWith(TEMP_SUFFIX)) continue;
      const p = join(dir, name);
      const st = await stat(p).catch(() => undefined);
      if (st?.isFile() && st.mtimeMs < cutoff) await rm(p, { force: true }).catch(() => undefined);
    }
  }

  /** Creates the temp file, recreating the directory if a concurrent delete pruned it meanwhile. */
  async #createTemp(tmp: string): Promise<FileHandle> {
    for (let attempt = 0; ; attempt++) {
      await mkdir(dirname(tmp), { recursive: true });
      try {
        return await open(tmp, 'wx', 0o644);
      } catch (err) {
        if (codeOf(err) !== 'ENOENT' || attempt >= 5) throw err;
      }
    }
  }

  async #writeStream(fh: FileHandle, body: AsyncIterable<Uint8Array>, signal: AbortSignal | undefined): Promise<number> {
    const it = body[Symbol.asyncIterator]();
    let position = 0;
    try {
      for (;;) {
        const r = signal ? await nextOrAbort(it, signal) : await it.next();
        if (r.done) break;
        await writeAt(fh, r.value, position);
        position += r.value.byteLength;
      }
      return position;
    } catch (err) {
      // Stop the producer; do not wait for it, it may be stuck in the await that caused the abort.
      it.return?.()?.catch(() => {});
      throw err;
    }
  }

  async open(key: string, options: OpenOptions = {}): Promise<Readable> {
    assertValidKey(key);
    const { range, signal } = options;
    assertValidRange(range, key);
    throwIfAborted(signal);
    let fh: FileHandle | undefined;
    try {
      fh = await open(this.#path(key), 'r');
      const st = await fh.stat();
      if (!st.isFile()) throw new NotFoundError(key);
      throwIfAborted(signal);
      // Objects never change once renamed into place, so the stat's size bounds the read: each read
      // is sized to what is left (a small object gets one buffer of its own size, not 1 MiB) and no
      // extra read is spent finding the end.
      const start = range?.start ?? 0;
      const end = Math.min(range?.end ?? st.size - 1, st.size - 1);
      if (end < start) {
        await fh.close();
        return Readable.from([]);
      }
      const stream = fh.createReadStream({ start, end, signal, highWaterMark: 1024 * 1024 });
      fh = undefined; // the stream closes it
      return stream;
    } catch (err) {
      await fh?.close().catch(() => undefined);
      if (NotFoundError.isInstance(err) || isAbortError(err)) throw err;
      if (MISSING_CODES.has(codeOf(err) ?? '')) throw new NotFoundError(key, { cause: err });
      throw mapError(err, `opening ${key} under ${this.root}`);
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<ListEntry> {
    assertValidPrefix(prefix);
    const { signal, delimiter } = options;
    throwIfAborted(signal);
    const cut = prefix.lastIndexOf('/');
    const dirKey = prefix.slice(0, cut + 1);
    const namePrefix = prefix.slice(cut + 1);
    yield* this.#walk(dirKey, namePrefix, delimiter === '/', signal);
  }

  async *#walk(dirKey: string, namePrefix: string, rollUp: boolean, signal: AbortSignal | undefined): AsyncGenerator<ListEntry> {
    const entries = await this.#readdir(dirKey);
    for (const e of entries) {
      if (!e.name.startsWith(namePrefix)) continue;
      throwIfAborted(signal);
      const key = dirKey + e.name;
      if (e.isDirectory()) {
        if (rollUp) {
          if (await this.#holdsObject(`${key}/`)) yield { type: 'prefix', key: `${key}/` };
        } else {
          yield* this.#walk(`${key}/`, '', false, signal);
        }
      } else if (e.isFile()) {
        let st;
        try {
          st = await stat(join(this.root, ...key.split('/')));
        } catch (err) {
          if (codeOf(err) === 'ENOENT') continue; // deleted while listing
          throw mapError(err, `listing ${key}`);
        }
        yield { type: 'object', key, size: st.size, createdAt: st.mtime };
      }
    }
  }

  /** Returns a directory's object and subdirectory entries, sorted so that keys come out in byte order. */
  async #readdir(dirKey: string): Promise<Dirent[]> {
    let entries: Dirent[];
    try {
      entries = await readdir(dirKey === '' ? this.root : join(this.root, ...dirKey.slice(0, -1).split('/')), {
        withFileTypes: true,
      });
    } catch (err) {
      if (MISSING_CODES.has(codeOf(err) ?? '')) return [];
      throw mapError(err, `listing ${dirKey || '/'} under ${this.root}`);
    }
    // A directory sorts as its name plus "/", the byte that follows it in every key beneath it.
    const sortKey = (e: Dirent) => (e.isDirectory() ? `${e.name}/` : e.name);
    return entries
      .filter((e) => (e.isDirectory() || e.isFile()) && !(e.isFile() && e.name.endsWith(TEMP_SUFFIX)))
      .sort((a, b) => compareKeys(sortKey(a), sortKey(b)));
  }

  async #holdsObject(dirKey: string): Promise<boolean> {
    for (const e of await this.#readdir(dirKey)) {
      if (e.isFile()) return true;
      if (await this.#holdsObject(`${dirKey}${e.name}/`)) return true;
    }
    return false;
  }

  async delete(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    for (const k of keys) assertValidKey(k);
    throwIfAborted(options.signal);
    const failures: { key: string; error: unknown }[] = [];
    const dirs = new Set<string>();
    for (const key of keys) {
      throwIfAborted(options.signal);
      const path = this.#path(key);
      try {
        await rm(path);
        dirs.add(dirname(path));
      } catch (err) {
        const code = codeOf(err);
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        failures.push({ key, error: mapError(err, `deleting ${key}`) });
      }
    }
    // Remove directories left empty, so a deleted generation stops being listed as a prefix.
    for (const dir of [...dirs].sort((a, b) => b.length - a.length)) await this.#prune(dir);
    if (failures.length > 0) throw new DeleteFailedError(failures);
  }

  async #prune(dir: string): Promise<void> {
    for (let d = dir; d.startsWith(this.root + sep); d = dirname(d)) {
      try {
        await rmdir(d);
      } catch (err) {
        // Not empty (or already gone): the normal way the climb ends.
        if (['ENOTEMPTY', 'EEXIST', 'ENOENT'].includes(codeOf(err) ?? '')) return;
        throw mapError(err, `removing empty directory ${d}`);
      }
    }
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Creates a FileReplicaClient for the directory `root`. */
export function createFileReplicaClient(options: FileReplicaClientOptions): FileReplicaClient {
  return new FileReplicaClient(options);
}
