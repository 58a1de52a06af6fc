import { randomBytes } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { CorruptDataError, PageSizeMismatchError, WalFormatError } from './errors.js';
import type { WalHeader, WalStopReason } from './wal-format.js';
import { WalFrameReader } from './wal-reader.js';

/**
 * Bytes of committed pages held in memory (one copy per distinct page) before they are written to the
 * database file; also the most input an open transaction may pin before it is spilled to disk.
 */
export const APPLY_DEFAULT_BUFFER_BYTES = 32 * 1024 * 1024;
/** Bytes written between two background flushes of the database file to disk. */
const BACKGROUND_SYNC_BYTES = 64 * 1024 * 1024;
/** Pages are copied into slabs of this many pages, not one allocation each. */
const SLAB_PAGES = 256;
/** At most this many buffers go to one writev call (Linux IOV_MAX is 1024). */
const MAX_IOVECS = 1024;
/** writev calls in flight while flushing pages. */
const FLUSH_CONCURRENCY = 16;
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** Options for applying WALs to a database file. */
export interface WalApplyOptions {
  /**
   * Require each WAL to be a complete, valid chain that ends on a commit frame: anything else
   * (a checksum break, a salt change, a partial or uncommitted tail) throws CorruptDataError.
   * Restore uses this for segments, which hold committed transactions only. Default false: stop
   * quietly at the last valid commit, as SQLite's recovery does.
   */
  strict?: boolean;
  /** fsync the database file on close (default true). */
  fsync?: boolean;
  /** Committed page bytes kept in memory before writing them out (default 32 MiB). */
  bufferBytes?: number;
}

/** What applying one WAL did. */
export interface WalApplyResult {
  header: WalHeader;
  /** Frames of committed transactions applied. */
  frames: number;
  transactions: number;
  /** End of the last committed transaction in the WAL (bytes of the WAL that were used). */
  walBytes: number;
  /** Database size in pages after the last applied commit (0 when the WAL held no commit). */
  pageCount: number;
  stopReason: WalStopReason;
}

interface Pending {
  pgno: number;
  page: Buffer;
}

/**
 * Applies SQLite WALs to a database file the way a checkpoint does, without SQLite: the latest image
 * of every page of each committed transaction goes to (pgno − 1) × page size, and on close the file
 * is sized from the last commit frame. Frames after the last valid commit are never applied. Several
 * WALs (consecutive indexes of one generation) can be applied in order before `close`.
 */
export class WalApplier {
  readonly #fh: FileHandle;
  readonly #path: string;
  readonly #options: Required<WalApplyOptions>;
  #pageSize: number | undefined;
  /** Committed pages not yet written: one slot per page, overwritten in place by later images. */
  readonly #committed = new Map<number, number>();
  /** Slabs are kept across flushes and refilled, so a long apply allocates them once. */
  readonly #slabs: Buffer[] = [];
  /**
   * Page-sized views into the slabs, made once and reused by every flush cycle: a view made per page
   * per cycle would outlive young-generation collections and make V8 grow its heap.
   */
  readonly #slots: Buffer[] = [];
  /** Slots in use this cycle (#committed maps a page number to its slot). */
  #slotsUsed = 0;
  /** Input chunks the open transaction's pages point into, and their total size. */
  #pinned = new Set<ArrayBufferLike>();
  #pinnedBytes = 0;
  #pageCount = 0;
  #closed = false;
  #spill: { fh: FileHandle; path: string; size: number } | undefined;

  private constructor(fh: FileHandle, path: string, pageSize: number | undefined, options: WalApplyOptions) {
    this.#fh = fh;
    this.#path = path;
    this.#pageSize = pageSize;
    this.#options = {
      strict: options.strict ?? false,
      fsync: options.fsync ?? true,
      bufferBytes: options.bufferBytes ?? APPLY_DEFAULT_BUFFER_BYTES,
    };
  }

  /**
   * Opens the database file at `path` for applying WALs. The file must exist; it may be empty.
   * Throws CorruptDataError when it is not empty and not a SQLite database.
   */
  static async open(path: string, options: WalApplyOptions = {}): Promise<WalApplier> {
    const fh = await open(path, 'r+');
    try {
      const head = Buffer.alloc(100);
      const { bytesRead } = await fh.read(head, 0, 100, 0);
      let pageSize: number | undefined;
      if (bytesRead > 0) {
        if (bytesRead < 100 || !head.subarray(0, 16).equals(SQLITE_HEADER)) {
          throw new CorruptDataError(`${path} is not a SQLite database (bad header)`, { offset: 0 });
        }
        const raw = head.readUInt16BE(16);
        pageSize = raw === 1 ? 65_536 : raw;
      }
      const stat = await fh.stat();
      const applier = new WalApplier(fh, path, pageSize, options);
      if (pageSize) applier.#pageCount = Math.floor(stat.size / pageSize);
      return applier;
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Database size in pages after the last applied commit. */
  get pageCount(): number {
    return this.#pageCount;
  }

  /**
   * Applies one WAL, read as a stream from its header. Throws PageSizeMismatchError when its page size
   * differs from the database's, and (in strict mode) CorruptDataError when it is not a complete chain.
   */
  async apply(wal: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<WalApplyResult> {
    if (this.#closed) throw new Error('WalApplier is closed');
    const reader = new WalFrameReader(wal);
    try {
      const header = await reader.header();
      if (this.#pageSize === undefined) this.#pageSize = header.pageSize;
      if (header.pageSize !== this.#pageSize) {
        throw new PageSizeMismatchError(header.pageSize, this.#pageSize, this.#path);
      }
      let txn: Pending[] = [];
      let transactions = 0;
      let frames = 0;
      for (;;) {
        // Frames already buffered are taken without an await each; only a chunk boundary waits.
        let f = reader.nextBuffered();
        if (f === undefined) f = await reader.next();
        if (!f) break;
        this.#pin(f.page);
        txn.push({ pgno: f.pgno, page: f.page });
        if (f.commitSize !== 0) {
          frames += this.#spillFrames + txn.length;
          await this.#commit(txn);
          txn = [];
          transactions++;
          this.#pageCount = f.commitSize;
        } else if (this.#pinnedBytes > this.#options.bufferBytes) {
          // A transaction too large for memory: move its pages so far to disk.
          await this.#spillPages(txn);
          txn = [];
          this.#unpinAll();
        }
      }
      // Frames after the last commit are never applied: forget any that were spilled.
      this.#spilled = [];
      this.#spillFrames = 0;
      if (this.#spill) this.#spill.size = 0;
      const stopReason = reader.stopReason ?? 'end';
      if (this.#options.strict) {
        if (stopReason !== 'end') {
          throw new WalFormatError(`WAL frame at offset ${reader.validOffset} is invalid (${stopReason})`, {
            offset: reader.validOffset,
          });
        }
        if (reader.lastCommitOffset !== reader.validOffset) {
          throw new WalFormatError(
            `WAL ends with an uncommitted transaction after offset ${reader.lastCommitOffset}`,
            { offset: reader.lastCommitOffset },
          );
        }
      }
      return {
        header,
        frames,
        transactions,
        walBytes: reader.lastCommitOffset,
        pageCount: this.#pageCount,
        stopReason,
      };
    } finally {
      await reader.close();
    }
  }

  /** Writes out buffered pages, sizes the file from the last commit, fsyncs, and closes it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#flush();
      if (this.#pageSize !== undefined && this.#pageCount > 0) {
        await this.#fh.truncate(this.#pageCount * this.#pageSize);
      }
      await this.#settleBackgroundSync();
      if (this.#options.fsync) await this.#fh.sync();
    } finally {
      // A background flush still running must end before its file handle closes.
      await this.#bgSync;
      await this.#fh.close();
      await this.#dropSpill();
    }
  }

  /** Closes the file without writing buffered pages (after a failure). */
  async abort(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // The file is being discarded: a background flush's own failure no longer matters, only its end.
    await this.#bgSync;
    await this.#fh.close();
    await this.#dropSpill();
  }

  #spillFrames = 0;
  #spilled: { pgno: number; at: number }[] = [];

  /** Moves the pages of a transaction too large for memory to a temporary file beside the database. */
  async #spillPages(pages: Pending[]): Promise<void> {
    if (!this.#spill) {
      const path = `${this.#path}.lstream-apply-${randomBytes(4).toString('hex')}.tmp`;
      this.#spill = { fh: await open(path, 'w+'), path, size: 0 };
    }
    const spill = this.#spill;
    for (let i = 0; i < pages.length; i += MAX_IOVECS) {
      const batch = pages.slice(i, i + MAX_IOVECS);
      await spill.fh.writev(batch.map((p) => p.page), spill.size);
      for (const p of batch) {
        this.#spilled.push({ pgno: p.pgno, at: spill.size });
        spill.size += p.page.length;
      }
    }
    this.#spillFrames += pages.length;
  }

  async #commit(txn: Pending[]): Promise<void> {
    if (this.#spilled.length > 0) {
      // A transaction larger than the buffer: write what is buffered, then copy the spilled pages over.
      await this.#flush();
      const ps = this.#pageSize!;
      const latest = new Map<number, number>();
      for (const s of this.#spilled) latest.set(s.pgno, s.at);
      for (const [pgno, at] of latest) {
        const page = Buffer.allocUnsafe(ps);
        await this.#spill!.fh.read(page, 0, ps, at);
        await this.#stage(pgno, page);
      }
      this.#spilled = [];
      this.#spillFrames = 0;
      this.#spill!.size = 0;
    }
    // Make room for the whole transaction first, so its pages are staged without awaiting.
    const ps = this.#pageSize!;
    if ((this.#committed.size + txn.length) * ps > this.#options.bufferBytes && this.#committed.size > 0) await this.#flush();
    for (const p of txn) this.#stageNow(p.pgno, p.page);
    this.#unpinAll();
  }

  /** Copies a committed page image into its slot, writing everything out first when memory is full. */
  async #stage(pgno: number, page: Buffer): Promise<void> {
    if (!this.#committed.has(pgno) && this.#committed.size * page.length >= this.#options.bufferBytes) await this.#flush();
    this.#stageNow(pgno, page);
  }

  /** Copies a committed page image into its slot (memory permitting is the caller's concern). */
  #stageNow(pgno: number, page: Buffer): void {
    let i = this.#committed.get(pgno);
    if (i === undefined) {
      i = this.#slotsUsed++;
      if (i === this.#slots.length) {
        // Every page of one applier has the same size (a WAL of another size is refused).
        const ps = page.length;
        const slab = Buffer.allocUnsafeSlow(ps * SLAB_PAGES);
        this.#slabs.push(slab);
        for (let k = 0; k < SLAB_PAGES; k++) this.#slots.push(slab.subarray(k * ps, (k + 1) * ps));
      }
      this.#committed.set(pgno, i);
    }
    page.copy(this.#slots[i]!);
  }

  #pin(page: Buffer): void {
    if (!this.#pinned.has(page.buffer)) {
      this.#pinned.add(page.buffer);
      this.#pinnedBytes += page.buffer.byteLength;
    }
  }

  #unpinAll(): void {
    this.#pinned.clear();
    this.#pinnedBytes = 0;
  }

  /**
   * Writes buffered pages in page order, coalescing neighbours into one writev call. Several calls run
   * at once: each is a thread-pool round trip, and scattered pages make many of them.
   */
  async #flush(): Promise<void> {
    if (this.#committed.size === 0) return;
    const ps = this.#pageSize!;
    const pgnos = [...this.#committed.keys()].sort((a, b) => a - b);
    const inflight = new Set<Promise<void>>();
    let failure: unknown;
    let i = 0;
    while (i < pgnos.length && failure === undefined) {
      // A run of consecutive pages, as few buffers as possible: pages staged in page order sit side
      // by side in a slab and go as one buffer (Node's writev costs ~1 µs per buffer on this thread).
      const first = pgnos[i]!;
      const run: Buffer[] = [];
      let segStart = this.#committed.get(first)!;
      let segLen = 1;
      const endSegment = () => {
        const slab = this.#slabs[Math.floor(segStart / SLAB_PAGES)]!;
        const off = (segStart % SLAB_PAGES) * ps;
        run.push(slab.subarray(off, off + segLen * ps));
      };
      let j = i + 1;
      while (j < pgnos.length && pgnos[j] === first + (j - i)) {
        const slot = this.#committed.get(pgnos[j]!)!;
        if (slot === segStart + segLen && slot % SLAB_PAGES !== 0) {
          segLen++;
        } else {
          if (run.length + 1 >= MAX_IOVECS) break;
          endSegment();
          segStart = slot;
          segLen = 1;
        }
        j++;
      }
      endSegment();
      const p: Promise<void> = this.#fh.writev(run, (first - 1) * ps).then(
        () => void inflight.delete(p),
        (err: unknown) => {
          inflight.delete(p);
          failure ??= err;
        },
      );
      inflight.add(p);
      if (inflight.size >= FLUSH_CONCURRENCY) await Promise.race(inflight);
      i = j;
    }
    await Promise.all(inflight);
    if (failure !== undefined) throw failure;
    this.#unsynced += pgnos.length * ps;
    this.#committed.clear();
    this.#slotsUsed = 0;
    this.#backgroundSync();
  }

  /** Bytes written since the last background flush to disk was started. */
  #unsynced = 0;
  #bgSync: Promise<void> | undefined;
  #bgSyncError: { err: unknown } | undefined;

  /**
   * Every 64 MiB written, starts flushing the file to disk in the background (one at a time), so
   * the disk works while the next pages are applied and the final fsync finds little left.
   */
  #backgroundSync(): void {
    if (!this.#options.fsync || this.#bgSync || this.#unsynced < BACKGROUND_SYNC_BYTES) return;
    this.#unsynced = 0;
    this.#bgSync = this.#fh.datasync().then(
      () => {
        this.#bgSync = undefined;
      },
      (err: unknown) => {
        this.#bgSync = undefined;
        this.#bgSyncError ??= { err };
      },
    );
  }

  /** Waits for a background flush; rethrows its failure (the final fsync must not hide it). */
  async #settleBackgroundSync(): Promise<void> {
    await this.#bgSync;
    if (this.#bgSyncError) throw this.#bgSyncError.err;
  }

  async #dropSpill(): Promise<void> {
    if (this.#spill) {
      const { fh, path } = this.#spill;
      this.#spill = undefined;
      await fh.close();
      await rm(path, { force: true });
    }
  }
}

/**
 * Applies one WAL stream to the database file at `dbPath` (see WalApplier) and closes it.
 * Returns what was applied.
 */
export async function applyWal(
  dbPath: string,
  wal: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  options?: WalApplyOptions,
): Promise<WalApplyResult> {
  const applier = await WalApplier.open(dbPath, options);
  try {
    const result = await applier.apply(wal);
    await applier.close();
    return result;
  } catch (err) {
    await applier.abort();
    throw err;
  }
}
