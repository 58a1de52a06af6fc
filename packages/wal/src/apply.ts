import { randomBytes } from 'node:crypto';
import { writeSync, writevSync } from 'node:fs';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { CorruptDataError, PageSizeMismatchError, WalFormatError } from './errors.js';
import type { WalHeader, WalStopReason } from './wal-format.js';
import { WalFrameReader } from './wal-reader.js';

/**
 * Bytes of page copies held in memory: committed pages not yet written (one copy per distinct page)
 * and the open transaction's pages together. When they fill it, committed pages are written out; an
 * open transaction that fills it alone is moved to a spill file beside the database.
 */
export const APPLY_DEFAULT_BUFFER_BYTES = 32 * 1024 * 1024;
/** Bytes written between two background flushes of the database file to disk. */
const BACKGROUND_SYNC_BYTES = 64 * 1024 * 1024;
/** Pages are copied into slabs of this many pages, not one allocation each. */
const SLAB_PAGES = 256;
/** At most this many buffers go to one writev call (Linux IOV_MAX is 1024). */
const MAX_IOVECS = 1024;
/** A flush yields to the event loop after writing for this long. */
const FLUSH_SLICE_MS = 4;
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
  /** Bytes of page copies kept in memory, committed and of the open transaction (default 32 MiB; see APPLY_DEFAULT_BUFFER_BYTES). */
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

/**
 * Applies SQLite WALs to a database file the way a checkpoint does, without SQLite: the latest image
 * of every page of each committed transaction goes to (pgno − 1) × page size, and on close the file
 * is sized from the last commit frame. Frames after the last valid commit are never applied. Several
 * WALs (consecutive indexes of one generation) can be applied in order before `close`.
 *
 * Every page is copied out of its input chunk as it is read, so `apply` holds no reference to a
 * chunk once it has asked its source for the next one: a source may refill the same memory (see
 * `readFileChunks`). Memory stays within `bufferBytes` of page copies plus the chunk being read.
 */
export class WalApplier {
  readonly #fh: FileHandle;
  readonly #path: string;
  readonly #options: Required<WalApplyOptions>;
  #pageSize: number | undefined;
  /** Most page copies held at once (committed and of the open transaction). */
  #maxSlots = 0;
  /** Committed pages not yet written: page number → the slot holding its latest image. */
  readonly #committed = new Map<number, number>();
  /** Pages of the open transaction, in frame order, and the slots holding their copies. */
  #txnPgnos: number[] = [];
  #txnSlots: number[] = [];
  /** Slabs are kept across flushes and refilled, so a long apply allocates them once. */
  readonly #slabs: Buffer[] = [];
  /**
   * Page-sized views into the slabs, made once and reused: a view made per page per cycle would
   * outlive young-generation collections and make V8 grow its heap.
   */
  readonly #slots: Buffer[] = [];
  /** Slots handed out since the last time every slot was free. */
  #slotsUsed = 0;
  /**
   * Slots freed while others were still in use (a superseded copy, or a page written out while a
   * transaction was open), reused first in, first out.
   */
  #free: number[] = [];
  #freeHead = 0;
  #pageCount = 0;
  #closed = false;
  /** Set when a write left the file with part of a transaction: the applier can only be aborted. */
  #failed: unknown;
  #spill: { fh: FileHandle; path: string } | undefined;
  /**
   * Page numbers of the open transaction's pages moved to the spill file, in frame order; the k-th
   * is at k × page size there (a number each, not an object: a bulk load spills millions).
   */
  #spilled: number[] = [];

  private constructor(fh: FileHandle, path: string, pageSize: number | undefined, options: WalApplyOptions) {
    this.#fh = fh;
    this.#path = path;
    const bufferBytes = options.bufferBytes ?? APPLY_DEFAULT_BUFFER_BYTES;
    if (!Number.isFinite(bufferBytes) || bufferBytes < 0) {
      throw new RangeError(`bufferBytes must be a number of bytes (0 or more), got ${bufferBytes}`);
    }
    this.#options = { strict: options.strict ?? false, fsync: options.fsync ?? true, bufferBytes };
    if (pageSize !== undefined) this.#setPageSize(pageSize);
  }

  #setPageSize(pageSize: number): void {
    this.#pageSize = pageSize;
    // At least two slots, so a commit always finds room for its last page after a flush.
    this.#maxSlots = Math.max(2, Math.floor(this.#options.bufferBytes / pageSize));
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
    this.#throwIfFailed();
    const reader = new WalFrameReader(wal);
    try {
      const header = await reader.header();
      if (this.#pageSize === undefined) this.#setPageSize(header.pageSize);
      if (header.pageSize !== this.#pageSize) {
        throw new PageSizeMismatchError(header.pageSize, this.#pageSize!, this.#path);
      }
      let transactions = 0;
      let frames = 0;
      for (;;) {
        // Frames already buffered are taken without an await each; only a chunk boundary waits.
        let f = reader.nextBuffered();
        if (f === undefined) f = await reader.next();
        if (!f) break;
        if (this.#committed.size + this.#txnSlots.length >= this.#maxSlots) await this.#makeRoom();
        const slot = this.#allocSlot(this.#committed.has(f.pgno));
        f.page.copy(this.#slots[slot]!);
        this.#txnPgnos.push(f.pgno);
        this.#txnSlots.push(slot);
        if (f.commitSize !== 0) {
          frames += this.#spilled.length + this.#txnSlots.length;
          await this.#commit();
          transactions++;
          this.#pageCount = f.commitSize;
        }
      }
      // Frames after the last commit are never applied.
      this.#dropOpenTransaction();
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
    } catch (err) {
      this.#dropOpenTransaction();
      throw err;
    } finally {
      await reader.close();
    }
  }

  /**
   * Writes out buffered pages, sizes the file from the last commit, fsyncs, and closes it. After a
   * failed write that left part of a transaction in the file, it closes without writing and throws.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#failed !== undefined) {
      await this.abort();
      this.#throwIfFailed();
    }
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

  #throwIfFailed(): void {
    if (this.#failed !== undefined) {
      throw new Error(`${this.#path}: an earlier write failed partway through a transaction; the file is incomplete`, {
        cause: this.#failed,
      });
    }
  }

  /**
   * Hands out a slot for a page arriving in the open transaction. A page not committed yet (most
   * often a new one) gets a never-used slot while there is one: new pages arrive in page order and
   * end up side by side, so a flush writes them as one buffer. A page committed already gets a freed
   * slot first: it was written before and will be again wherever it sits.
   */
  #allocSlot(committed: boolean): number {
    if (this.#freeHead < this.#free.length && (committed || this.#slotsUsed >= this.#maxSlots)) {
      const slot = this.#free[this.#freeHead++]!;
      if (this.#freeHead === this.#free.length) {
        this.#free = [];
        this.#freeHead = 0;
      }
      return slot;
    }
    const slot = this.#slotsUsed++;
    if (slot === this.#slots.length) {
      // Every page of one applier has the same size (a WAL of another size is refused).
      const ps = this.#pageSize!;
      const slab = Buffer.allocUnsafeSlow(ps * SLAB_PAGES);
      this.#slabs.push(slab);
      for (let k = 0; k < SLAB_PAGES; k++) this.#slots.push(slab.subarray(k * ps, (k + 1) * ps));
    }
    return slot;
  }

  /**
   * Once nothing committed is held, moves the open transaction's pages (usually a few) to the first
   * slots, in place, and hands out the rest from there in order, so the pages after a flush land side
   * by side again instead of in the holes the flushed pages left. A large open transaction stays where
   * it is (moving it would copy each of its pages): returns false then, and the caller frees the
   * flushed pages' slots one by one.
   */
  #compactSlots(): boolean {
    const slots = this.#txnSlots;
    if (slots.length > this.#maxSlots >>> 2) return false;
    // The k-th lowest slot in use moves to slot k: never above itself, and whatever slot k held has
    // already moved, so nothing is overwritten before it is copied.
    const order = slots.map((_, i) => i).sort((a, b) => slots[a]! - slots[b]!);
    for (let k = 0; k < order.length; k++) {
      const i = order[k]!;
      if (slots[i] !== k) this.#slots[slots[i]!]!.copy(this.#slots[k]!);
      slots[i] = k;
    }
    this.#slotsUsed = slots.length;
    this.#free = [];
    this.#freeHead = 0;
    return true;
  }

  #freeSlot(slot: number): void {
    this.#free.push(slot);
  }

  /** Forgets the open transaction (its frames are never applied) and frees its slots. */
  #dropOpenTransaction(): void {
    for (const slot of this.#txnSlots) this.#freeSlot(slot);
    this.#txnPgnos = [];
    this.#txnSlots = [];
    this.#spilled = [];
  }

  /**
   * Frees slots when every one is taken: writes out committed pages, or, when the open transaction
   * alone fills memory, moves its pages so far to a temporary file beside the database.
   */
  async #makeRoom(): Promise<void> {
    if (this.#committed.size > 0) {
      await this.#flush();
      return;
    }
    if (!this.#spill) {
      const path = `${this.#path}.lstream-apply-${randomBytes(4).toString('hex')}.tmp`;
      this.#spill = { fh: await open(path, 'w+'), path };
    }
    const spill = this.#spill;
    const ps = this.#pageSize!;
    const slots = this.#txnSlots;
    const pgnos = this.#txnPgnos;
    for (let i = 0; i < slots.length; i += MAX_IOVECS) {
      const batch = slots.slice(i, i + MAX_IOVECS).map((s) => this.#slots[s]!);
      // The spill file holds the transaction's spilled pages back to back, in frame order.
      await spill.fh.writev(batch, this.#spilled.length * ps);
      this.#spilled.push(...pgnos.slice(i, i + batch.length));
    }
    this.#txnPgnos = [];
    this.#txnSlots = [];
    // Nothing is held now: every slot is free.
    this.#compactSlots();
  }

  /**
   * Makes the open transaction's pages committed: each page's new copy takes the place of the old one,
   * whose slot is freed. Every frame is copied once, on arrival. (Copying the new image over the old
   * slot instead keeps pages where they first arrived, but costs a second copy of every rewritten
   * page: 10% slower on a WAL of large transactions, and no faster for a ~200-index restore, since
   * runs stay as long after a flush moves the open transaction to the first slots.)
   */
  async #commit(): Promise<void> {
    if (this.#spilled.length > 0) await this.#commitSpilled();
    const committed = this.#committed;
    const pgnos = this.#txnPgnos;
    const slots = this.#txnSlots;
    for (let i = 0; i < pgnos.length; i++) {
      const pgno = pgnos[i]!;
      const slot = slots[i]!;
      const old = committed.get(pgno);
      if (old !== undefined) this.#freeSlot(old);
      committed.set(pgno, slot);
    }
    this.#txnPgnos = [];
    this.#txnSlots = [];
  }

  /**
   * Commits a transaction larger than memory: writes what is buffered, then copies the latest image
   * of each spilled page straight into the database (pages still in memory supersede them later).
   */
  async #commitSpilled(): Promise<void> {
    await this.#flush();
    const ps = this.#pageSize!;
    const spill = this.#spill!;
    const inMemory = new Set(this.#txnPgnos);
    const latest = new Map<number, number>();
    this.#spilled.forEach((pgno, k) => {
      if (!inMemory.has(pgno)) latest.set(pgno, k * ps);
    });
    const batchPages = Math.min(SLAB_PAGES, this.#maxSlots);
    const scratch = Buffer.allocUnsafe(ps * batchPages);
    const entries = [...latest].sort((a, b) => a[0] - b[0]);
    try {
      for (let i = 0; i < entries.length; i += batchPages) {
        const batch = entries.slice(i, i + batchPages);
        await Promise.all(batch.map(([, at], k) => spill.fh.read(scratch, k * ps, ps, at)));
        await Promise.all(batch.map(([pgno], k) => this.#fh.write(scratch, k * ps, ps, (pgno - 1) * ps)));
        this.#unsynced += batch.length * ps;
      }
    } catch (err) {
      // Part of a transaction may be in the file already: nothing may be written after this.
      this.#failed = err;
      throw err;
    }
    this.#spilled = [];
  }

  /**
   * Writes buffered pages in page order, coalescing neighbours into one writev call. The calls are
   * synchronous, in slices of ~4 ms with a turn of the event loop between slices: scattered pages make
   * thousands of small writes into the page cache, and through the thread pool each cost this
   * thread ~35 µs besides the round trip (a ~200-index restore: 0.82–0.99 s of CPU instead of
   * 1.10–1.20). Writes that reach the disk happen in the background sync and the final fsync, off
   * this thread.
   */
  async #flush(): Promise<void> {
    if (this.#committed.size === 0) return;
    const ps = this.#pageSize!;
    const pgnos = [...this.#committed.keys()].sort((a, b) => a - b);
    let sliceStart = performance.now();
    let i = 0;
    while (i < pgnos.length) {
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
      writeAllSync(this.#fh.fd, run, (first - 1) * ps);
      if (performance.now() - sliceStart > FLUSH_SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        sliceStart = performance.now();
      }
      i = j;
    }
    this.#unsynced += pgnos.length * ps;
    const flushed = [...this.#committed.values()];
    this.#committed.clear();
    if (!this.#compactSlots()) for (const slot of flushed) this.#freeSlot(slot);
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

/** Writes `bufs` at `position` of the file, finishing a short write. */
function writeAllSync(fd: number, bufs: Buffer[], position: number): void {
  let total = 0;
  for (const b of bufs) total += b.length;
  let done = writevSync(fd, bufs, position);
  if (done === total) return;
  const rest = Buffer.concat(bufs);
  while (done < total) done += writeSync(fd, rest, done, total - done, position + done);
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
