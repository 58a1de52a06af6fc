import { randomBytes } from 'node:crypto';
import { writeSync, writevSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { CorruptDataError, PageSizeMismatchError, WalFormatError } from './errors.js';
import { writeAt } from './file-chunks.js';
import { WAL_FRAME_HEADER_SIZE, type WalHeader, type WalStopReason } from './wal-format.js';
import type { ChunkWatcher } from './byte-reader.js';
import { nativePwriteRuns, type NativePwriteRuns } from './lz4-native.js';
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
/** Bytes of the buffer pages from lent chunks are gathered in before a write. */
const STAGING_BYTES = 1024 * 1024;
/** A flush yields to the event loop after writing for this long. */
const FLUSH_SLICE_MS = 4;
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

/** What the 100-byte header at the start of a SQLite database file says. */
export interface DatabaseHeader {
  /** Page size in bytes as the header gives it (1 stands for 65536), not checked to be one SQLite uses. */
  pageSize: number;
  /** Pages in the database, when the header's count is valid: non-zero, and its version-valid-for number matches the change counter. */
  pageCount: number | undefined;
}

/** Reads the header from the first bytes of a file; undefined when they are not a SQLite database's (fewer than 100 bytes, or another magic). */
export function parseDatabaseHeader(head: Uint8Array): DatabaseHeader | undefined {
  if (head.length < 100) return undefined;
  const b = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (!b.subarray(0, 16).equals(SQLITE_HEADER)) return undefined;
  const raw = b.readUInt16BE(16);
  const count = b.readUInt32BE(28);
  return { pageSize: raw === 1 ? 65_536 : raw, pageCount: count !== 0 && b.readUInt32BE(92) === b.readUInt32BE(24) ? count : undefined };
}

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
  /**
   * Write each page to the file as it is read, before its transaction's commit frame, holding
   * nothing in memory (`bufferBytes` does not apply): the fastest way, for a file that is thrown
   * away when applying fails, such as a restore's temporary file. Implies `strict`. A WAL that
   * turns out corrupt or incomplete still throws, but part of its last transaction may be in the
   * file by then: the applier can then only be aborted. Default false.
   */
  writeThrough?: boolean;
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

/** Options for one `WalApplier.apply` call. */
export interface WalApplyStreamOptions {
  /**
   * Lends the stream's chunks to the applier: it keeps pages in place in a chunk instead of copying
   * them, and calls `release(chunk)` (with the value the stream yielded) once it needs nothing in it
   * any more, after which the source may reuse the chunk's memory. Every chunk is released exactly
   * once: after the pages in it are written, superseded or dropped, by `close` or `abort` at the
   * latest. Chunks held count against `bufferBytes`. `release` must not throw.
   * Without it, pages are copied out and nothing is kept from a chunk once the next is asked for.
   */
  release?: (chunk: Uint8Array) => void;
}

/** A chunk of a lending source that still holds staged pages, or is the one being read. */
interface LentChunk {
  /** The value the source yielded: what `release` gets back. */
  readonly original: Uint8Array;
  /** The same bytes as a Buffer. */
  readonly buf: Buffer;
  readonly release: (chunk: Uint8Array) => void;
  /** Pages staged in place in it (committed or of the open transaction). */
  live: number;
  /** Lent references handed out for it (some may have been freed, and taken again elsewhere). */
  readonly refs: number[];
  /** True while the reader is in it. */
  current: boolean;
}

/**
 * Applies SQLite WALs to a database file the way a checkpoint does, without SQLite: the latest image
 * of every page of each committed transaction goes to (pgno − 1) × page size, and on close the file
 * is sized from the last commit frame. Frames after the last valid commit are never applied. Several
 * WALs (consecutive indexes of one generation) can be applied in order before `close`.
 *
 * By default every page is copied out of its input chunk as it is read, so `apply` holds no
 * reference to a chunk once it has asked its source for the next one: a source may refill the same
 * memory (see `readFileChunks`). A source that lends its chunks (`release`, see `lendFileChunks`)
 * spares that copy: pages stay in place until written. Memory stays within `bufferBytes` of page
 * copies and held chunks, plus the chunk being read.
 */
export class WalApplier {
  readonly #fh: FileHandle;
  readonly #path: string;
  readonly #options: Required<WalApplyOptions>;
  #pageSize: number | undefined;
  /** Most page copies held at once (committed and of the open transaction). */
  #maxSlots = 0;
  /**
   * Committed pages not yet written: page number → where its latest image is. A location is a slot
   * (0 or more) or, as ~r (below 0), lent reference r: a page in place in a lent chunk.
   */
  readonly #committed = new Map<number, number>();
  /** Pages of the open transaction, in frame order, and their locations. */
  #txnPgnos: number[] = [];
  #txnSlots: number[] = [];
  /** Lent reference r: the chunk holding the page and the page's byte offset in it. */
  readonly #refChunk: (LentChunk | undefined)[] = [];
  readonly #refAt: number[] = [];
  readonly #refPgno: number[] = [];
  #freeRefs: number[] = [];
  /** The lent chunk being read, if the current `apply` borrows its chunks. */
  #currentChunk: LentChunk | undefined;
  /**
   * Bytes of memory lent chunks hold for their pages after the reader left them: each chunk's whole
   * ArrayBuffer (a small block decoded into a 4 MiB buffer holds 4 MiB), each buffer counted once.
   */
  #lentBytes = 0;
  /** Chunks held after the reader left them, per ArrayBuffer. */
  readonly #heldMemory = new Map<ArrayBufferLike, number>();
  /** Every lent chunk not yet released, so `abort` can release them all. */
  readonly #held = new Set<LentChunk>();
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
    const writeThrough = options.writeThrough ?? false;
    this.#options = { strict: writeThrough || (options.strict ?? false), fsync: options.fsync ?? true, bufferBytes, writeThrough };
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
        const header = parseDatabaseHeader(head.subarray(0, bytesRead));
        if (!header) throw new CorruptDataError(`${path} is not a SQLite database (bad header)`, { offset: 0 });
        pageSize = header.pageSize;
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
  async apply(
    wal: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: WalApplyStreamOptions = {},
  ): Promise<WalApplyResult> {
    // Nothing is taken from the stream when this throws: a lent stream's chunks are still the caller's.
    if (this.#applying) throw new Error('WalApplier.apply is already running: wait for it before applying the next WAL');
    if (this.#closed) throw new Error('WalApplier is closed');
    this.#throwIfFailed();
    const run = this.#applyNow(wal, options.release);
    this.#applying = run.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await run;
    } finally {
      this.#applying = undefined;
    }
  }

  /** The `apply` running, if any (settles, never rejects, when it ends). */
  #applying: Promise<void> | undefined;

  /** Stops an `apply` whose applier was aborted meanwhile, at its next step. */
  #checkNotAborted(): void {
    if (this.#closed) throw new Error('WalApplier was aborted while applying a WAL');
  }

  async #applyNow(wal: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, release: ((chunk: Uint8Array) => void) | undefined): Promise<WalApplyResult> {
    const reader = new WalFrameReader(wal, release ? { watch: this.#lendWatcher(release) } : undefined);
    try {
      this.#inSource = true;
      const header = await reader.header();
      this.#inSource = false;
      this.#checkNotAborted();
      if (this.#pageSize === undefined) this.#setPageSize(header.pageSize);
      if (header.pageSize !== this.#pageSize) {
        throw new PageSizeMismatchError(header.pageSize, this.#pageSize!, this.#path);
      }
      let transactions = 0;
      let frames = 0;
      const ps = header.pageSize;
      for (;;) {
        this.#checkNotAborted();
        // The frames buffered in the current chunk are verified in one pass and copied from it in
        // place; only a frame that spans two chunks comes through `next`, as a copy of its own.
        const batch = reader.bufferedFrames();
        if (batch === null) break;
        if (batch !== undefined) {
          const { chunk, count, frameSize, pgnos, commits } = batch;
          if (this.#options.writeThrough) {
            await this.#writeThrough(chunk, batch.start + WAL_FRAME_HEADER_SIZE, count, frameSize, pgnos);
            this.#checkNotAborted();
            for (let k = 0; k < count; k++) {
              const committed = this.#framesWrittenThrough(commits[k]!);
              frames += committed;
              if (committed > 0) transactions++;
            }
            continue;
          }
          const lent = this.#currentChunk;
          let at = batch.start + WAL_FRAME_HEADER_SIZE;
          for (let k = 0; k < count; k++, at += frameSize) {
            if (this.#full()) {
              await this.#makeRoom();
              this.#checkNotAborted();
            }
            if (lent) this.#stageLent(pgnos[k]!, lent, at);
            else this.#stage(pgnos[k]!, chunk, at, ps);
            if (commits[k] !== 0) {
              frames += this.#spilled.length + this.#txnSlots.length;
              await this.#commit();
              this.#checkNotAborted();
              transactions++;
              this.#pageCount = commits[k]!;
            }
          }
          continue;
        }
        // A write through may still be reading the chunk the reader is about to leave.
        if (this.#options.writeThrough) await this.#settleWrites();
        this.#inSource = true;
        const f = await reader.next();
        this.#inSource = false;
        this.#checkNotAborted();
        if (!f) break;
        if (this.#options.writeThrough) {
          await this.#writeThrough(f.page, 0, 1, this.#pageSize!, [f.pgno]);
          this.#checkNotAborted();
          const committed = this.#framesWrittenThrough(f.commitSize);
          frames += committed;
          if (committed > 0) transactions++;
          continue;
        }
        // A frame across two chunks: a copy (as is, rarely, one at the start of a chunk).
        if (this.#full()) {
          await this.#makeRoom();
          this.#checkNotAborted();
        }
        this.#stage(f.pgno, f.page, 0, ps);
        if (f.commitSize !== 0) {
          frames += this.#spilled.length + this.#txnSlots.length;
          await this.#commit();
          this.#checkNotAborted();
          transactions++;
          this.#pageCount = f.commitSize;
        }
      }
      // Frames after the last commit are never applied.
      this.#dropOpenTransaction();
      const stopReason = reader.stopReason ?? 'end';
      if (this.#options.strict) {
        if (this.#options.writeThrough) await this.#settleWrites();
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
      // After an abort that did not wait (the apply was waiting on its source), everything this
      // applier held is gone already.
      if (!this.#abandoned) this.#dropOpenTransaction();
      if (this.#openFrames > 0) {
        // Part of a transaction that did not commit was written through: the file is unusable.
        if (this.#failed === undefined) {
          this.#failed = err;
          this.#wroteIncomplete = true;
        }
        this.#openFrames = 0;
      }
      // A write through still reading the source's memory must end before the source is closed.
      await this.#writing?.catch(() => undefined);
      throw err;
    } finally {
      this.#inSource = false;
      await reader.close();
    }
  }

  /** True while the running `apply` waits for its source to yield. */
  #inSource = false;
  /** Set when `abort` cleaned up without waiting for the running `apply`. */
  #abandoned = false;
  /** The running or finished `close` or `abort`: a second call waits for it. */
  #ending: Promise<void> | undefined;

  /**
   * Writes out buffered pages, sizes the file from the last commit, fsyncs, and closes it. After a
   * failed write that left part of a transaction in the file, it closes without writing and throws.
   * Pages are written in the background while WALs are applied, so a write that fails after the last
   * `apply` returned is reported here (or by the next `apply`).
   */
  async close(): Promise<void> {
    if (this.#ending) return this.#ending;
    if (this.#applying) throw new Error('WalApplier.close() while apply() is running: wait for it, or abort()');
    this.#ending = this.#closeNow();
    return this.#ending;
  }

  async #closeNow(): Promise<void> {
    if (this.#failed !== undefined) {
      await this.#abortNow();
      this.#throwIfFailed();
    }
    this.#closed = true;
    try {
      await this.#flush();
      await this.#settleWrites();
      if (this.#pageSize !== undefined && this.#pageCount > 0) {
        await this.#fh.truncate(this.#pageCount * this.#pageSize);
      }
      await this.#settleBackgroundSync();
      if (this.#options.fsync) await this.#fh.sync();
    } finally {
      // Writes and a background flush still running must end before their file handle closes.
      await this.#writing?.catch(() => undefined);
      await this.#bgSync;
      await this.#fh.close();
      await this.#dropSpill();
      // Held only when writing failed: the pages are not needed any more either way.
      this.#releaseAll();
    }
  }

  /**
   * Closes the file without writing buffered pages (after a failure). An `apply` still running stops
   * at its next step and rejects: when it is writing, this waits for it; when it waits for its source
   * to yield (which may be waiting for this very call), this cleans up at once, and the apply gives
   * back whatever its source yields next.
   */
  async abort(): Promise<void> {
    if (this.#ending) {
      await this.#ending.catch(() => undefined);
      return;
    }
    this.#ending = this.#abortNow();
    return this.#ending;
  }

  async #abortNow(): Promise<void> {
    this.#closed = true;
    if (this.#applying && !this.#inSource) await this.#applying;
    if (this.#applying) this.#abandoned = true;
    // The file is being discarded: a write's or a background flush's own failure no longer
    // matters, only its end, which comes before the chunks it may read go back.
    await this.#writing?.catch(() => undefined);
    this.#releaseAll();
    await this.#bgSync;
    await this.#fh.close();
    await this.#dropSpill();
  }

  #throwIfFailed(): void {
    if (this.#failed !== undefined) {
      const what = this.#wroteIncomplete
        ? 'part of a transaction the WAL did not complete was written through'
        : 'an earlier write failed partway through a transaction';
      throw new Error(`${this.#path}: ${what}; the file is incomplete`, { cause: this.#failed });
    }
  }

  /**
   * Watches the reader move through a lent stream's chunks: the chunk being read is the one pages
   * are staged in place in; a chunk left with no page in it goes straight back to the source.
   */
  #lendWatcher(release: (chunk: Uint8Array) => void): ChunkWatcher {
    return {
      entered: (original, buf) => {
        const c: LentChunk = { original, buf, release, live: 0, current: true, refs: [] };
        this.#held.add(c);
        this.#currentChunk = c;
      },
      left: (original) => {
        const c = this.#currentChunk;
        if (c === undefined || c.original !== original) {
          // An empty chunk, never entered.
          release(original);
          return;
        }
        this.#currentChunk = undefined;
        c.current = false;
        if (c.live === 0) this.#releaseChunk(c);
        else this.#countHeld(c, 1);
      },
    };
  }

  #countHeld(c: LentChunk, delta: 1 | -1): void {
    const memory = c.original.buffer;
    const n = (this.#heldMemory.get(memory) ?? 0) + delta;
    if (n === 0) this.#heldMemory.delete(memory);
    else this.#heldMemory.set(memory, n);
    if (n === (delta > 0 ? 1 : 0)) this.#lentBytes += delta * memory.byteLength;
  }

  #releaseChunk(c: LentChunk): void {
    if (this.#held.delete(c)) c.release(c.original);
  }

  /** Releases every lent chunk still held, whatever is in it (the applier is being discarded). */
  #releaseAll(): void {
    const held = [...this.#held];
    this.#held.clear();
    this.#lentBytes = 0;
    this.#heldMemory.clear();
    this.#refChunk.length = 0;
    this.#refAt.length = 0;
    this.#refPgno.length = 0;
    this.#freeRefs = [];
    for (const c of held) {
      c.live = 0;
      c.release(c.original);
    }
  }

  /** Page copies held in slots (committed or of the open transaction). */
  #copiesHeld(): number {
    return this.#slotsUsed - (this.#free.length - this.#freeHead);
  }

  /** True when the pages held (copies and lent chunks the reader has left) fill `bufferBytes`. */
  #full(): boolean {
    return this.#copiesHeld() + Math.ceil(this.#lentBytes / this.#pageSize!) >= this.#maxSlots;
  }

  /** Stages the page at byte `at` of the lent chunk being read, in place, in the open transaction. */
  #stageLent(pgno: number, c: LentChunk, at: number): void {
    const r = this.#freeRefs.length > 0 ? this.#freeRefs.pop()! : this.#refAt.length;
    this.#refChunk[r] = c;
    this.#refAt[r] = at;
    this.#refPgno[r] = pgno;
    c.refs.push(r);
    c.live++;
    this.#txnPgnos.push(pgno);
    this.#txnSlots.push(~r);
  }

  /** Frees a page's location: a slot goes back to the free list, a lent page leaves its chunk. */
  #freeLoc(loc: number): void {
    if (loc >= 0) {
      this.#freeSlot(loc);
      return;
    }
    const r = ~loc;
    const c = this.#refChunk[r]!;
    this.#refChunk[r] = undefined;
    this.#freeRefs.push(r);
    if (--c.live === 0 && !c.current) {
      this.#countHeld(c, -1);
      this.#releaseChunk(c);
    }
  }

  /** The buffer and byte offset of the page image at `loc`. */
  #pageAt(loc: number): [Buffer, number] {
    if (loc >= 0) return [this.#slabs[Math.floor(loc / SLAB_PAGES)]!, (loc % SLAB_PAGES) * this.#pageSize!];
    const r = ~loc;
    return [this.#refChunk[r]!.buf, this.#refAt[r]!];
  }

  /** Copies the page image at `loc` into `target` at byte `at` (no tuple: this runs per page). */
  #copyPage(loc: number, target: Buffer, at: number): void {
    const ps = this.#pageSize!;
    if (loc >= 0) {
      const from = (loc % SLAB_PAGES) * ps;
      this.#slabs[Math.floor(loc / SLAB_PAGES)]!.copy(target, at, from, from + ps);
    } else {
      const from = this.#refAt[~loc]!;
      this.#refChunk[~loc]!.buf.copy(target, at, from, from + ps);
    }
  }

  /** Copies the page at byte `at` of `src` into a free slot, as part of the open transaction. */
  #stage(pgno: number, src: Buffer, at: number, ps: number): void {
    const slot = this.#allocSlot(this.#committed.has(pgno));
    src.copy(this.#slots[slot]!, 0, at, at + ps);
    this.#txnPgnos.push(pgno);
    this.#txnSlots.push(slot);
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
    // Only copies sit in slots; pages in place in lent chunks stay where they are.
    const inSlots: number[] = [];
    for (let i = 0; i < slots.length; i++) if (slots[i]! >= 0) inSlots.push(i);
    if (inSlots.length > this.#maxSlots >>> 2) return false;
    // The k-th lowest slot in use moves to slot k: never above itself, and whatever slot k held has
    // already moved, so nothing is overwritten before it is copied.
    const order = inSlots.sort((a, b) => slots[a]! - slots[b]!);
    for (let k = 0; k < order.length; k++) {
      const i = order[k]!;
      if (slots[i] !== k) this.#slots[slots[i]!]!.copy(this.#slots[k]!);
      slots[i] = k;
    }
    this.#slotsUsed = order.length;
    this.#free = [];
    this.#freeHead = 0;
    return true;
  }

  #freeSlot(slot: number): void {
    this.#free.push(slot);
  }

  /** Forgets the open transaction (its frames are never applied) and frees its slots. */
  #dropOpenTransaction(): void {
    for (const loc of this.#txnSlots) this.#freeLoc(loc);
    this.#txnPgnos = [];
    this.#txnSlots = [];
    this.#spilled = [];
  }

  /**
   * Frees slots when every one is taken: writes out committed pages, or, when the open transaction
   * alone fills memory, moves its pages so far to a temporary file beside the database.
   */
  async #makeRoom(): Promise<void> {
    if (this.#lentBytes > 0 && (await this.#writeOldestChunk())) return;
    if (this.#committed.size > 0) {
      await this.#flush();
      return;
    }
    if (!this.#spill) {
      // Named only until it is open: a process killed meanwhile leaves nothing behind.
      const path = `${this.#path}.lstream-apply-${randomBytes(4).toString('hex')}.tmp`;
      const fh = await open(path, 'wx+', 0o600);
      this.#spill = { fh, path };
      await rm(path, { force: true });
    }
    const spill = this.#spill;
    const ps = this.#pageSize!;
    const slots = this.#txnSlots;
    const pgnos = this.#txnPgnos;
    for (let i = 0; i < slots.length; i += MAX_IOVECS) {
      const batch = slots.slice(i, i + MAX_IOVECS).map((loc) => {
        const [buf, at] = this.#pageAt(loc);
        return buf.subarray(at, at + ps);
      });
      // The spill file holds the transaction's spilled pages back to back, in frame order.
      const at = this.#spilled.length * ps;
      const { bytesWritten } = await spill.fh.writev(batch, at);
      // A short write (a nearly full disk) is continued, or fails: never a page silently missing.
      if (bytesWritten < batch.length * ps) await writeAt(spill.fh, Buffer.concat(batch).subarray(bytesWritten), at + bytesWritten);
      this.#spilled.push(...pgnos.slice(i, i + batch.length));
    }
    this.#txnPgnos = [];
    this.#txnSlots = [];
    // Nothing is held now: every slot is free, and every lent chunk left can go back.
    for (const loc of slots) if (loc < 0) this.#freeLoc(loc);
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
      const loc = slots[i]!;
      const old = committed.get(pgno);
      if (old !== undefined) this.#freeLoc(old);
      committed.set(pgno, loc);
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
    // The spilled images are newer than anything flushed: those writes must land first.
    await this.#settleWrites();
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
        await Promise.all(batch.map(([pgno], k) => writeAt(this.#fh, scratch.subarray(k * ps, (k + 1) * ps), (pgno - 1) * ps)));
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
    const committed = this.#committed;
    await this.#writePages([...committed.keys()].sort((a, b) => a - b));
    const flushed = [...committed.values()];
    committed.clear();
    if (this.#compactSlots()) {
      for (const loc of flushed) if (loc < 0) this.#freeLoc(loc);
    } else {
      for (const loc of flushed) this.#freeLoc(loc);
    }
    this.#backgroundSync();
  }

  /**
   * Frees the lent chunk held longest by writing its committed pages, and returns true; false when
   * no chunk can be freed that way (the open transaction has pages in the oldest one). Pages still
   * live in the oldest chunk are the ones no transaction since has rewritten, the likeliest to be
   * written only once anyway; writing everything committed instead would write every page held,
   * however soon it is rewritten.
   */
  async #writeOldestChunk(): Promise<boolean> {
    let oldest: LentChunk | undefined;
    for (const c of this.#held) {
      if (!c.current) {
        oldest = c;
        break;
      }
    }
    if (oldest === undefined) return false;
    const committed = this.#committed;
    const refChunk = this.#refChunk;
    const refPgno = this.#refPgno;
    let pgnos: number[] = [];
    for (const r of oldest.refs) {
      // A reference freed since, or freed and taken again by a later chunk, is not this chunk's.
      if (refChunk[r] !== oldest) continue;
      const pgno = refPgno[r]!;
      if (committed.get(pgno) === ~r) pgnos.push(pgno);
    }
    pgnos.sort((a, b) => a - b);
    // A reference freed and taken again within this chunk is listed twice.
    pgnos = pgnos.filter((p, k) => k === 0 || p !== pgnos[k - 1]);
    // The rest of its pages belong to the open transaction: they can move to copies, if there is
    // room for them there, rather than the whole transaction going to the spill file.
    const open = oldest.live - pgnos.length;
    if (open > 0 && this.#copiesHeld() + open >= this.#maxSlots) return false;
    await this.#writePages(pgnos);
    for (const pgno of pgnos) {
      const loc = committed.get(pgno)!;
      committed.delete(pgno);
      this.#freeLoc(loc);
    }
    if (open > 0) this.#copyOut(oldest);
    this.#backgroundSync();
    return true;
  }

  /** Copies the open transaction's pages that are in place in lent chunk `c` into slots. */
  #copyOut(c: LentChunk): void {
    const slots = this.#txnSlots;
    const pgnos = this.#txnPgnos;
    for (let i = 0; i < slots.length; i++) {
      const loc = slots[i]!;
      if (loc >= 0 || this.#refChunk[~loc] !== c) continue;
      const slot = this.#allocSlot(this.#committed.has(pgnos[i]!));
      this.#copyPage(loc, this.#slots[slot]!, 0);
      slots[i] = slot;
      this.#freeLoc(loc);
    }
  }

  /** Writes the committed pages `pgnos` (in ascending order) to the database file. */
  async #writePages(pgnos: number[]): Promise<void> {
    const write = nativePwriteRuns();
    if (write) return this.#writePagesOffThread(write, pgnos);
    const ps = this.#pageSize!;
    let sliceStart = performance.now();
    let i = 0;
    const committed = this.#committed;
    const slabs = this.#slabs;
    // Pages in place in lent chunks are copied into one staging buffer per run, side by side (frame
    // headers lie between them in their chunks): a view per page for writev cost more than the copy,
    // most of it in garbage collection.
    const staging = (this.#staging ??= Buffer.allocUnsafeSlow(Math.max(STAGING_BYTES, ps)));
    while (i < pgnos.length) {
      // A run of consecutive pages, as few buffers as possible: pages staged in page order sit side
      // by side in a slab and go as one buffer (Node's writev costs ~1 µs per buffer on this thread).
      const first = pgnos[i]!;
      const run: Buffer[] = [];
      let segBuf: Buffer | undefined;
      let segStart = 0;
      let segEnd = 0;
      let staged = 0;
      let j = i;
      while (j < pgnos.length && pgnos[j] === first + (j - i)) {
        const loc = committed.get(pgnos[j]!)!;
        let buf: Buffer;
        let at: number;
        if (loc >= 0) {
          buf = slabs[Math.floor(loc / SLAB_PAGES)]!;
          at = (loc % SLAB_PAGES) * ps;
        } else {
          if (staged + ps > staging.length) break;
          this.#copyPage(loc, staging, staged);
          buf = staging;
          at = staged;
          staged += ps;
        }
        if (buf === segBuf && at === segEnd) {
          segEnd += ps;
        } else {
          if (segBuf !== undefined) {
            if (run.length + 1 >= MAX_IOVECS) break;
            run.push(segBuf.subarray(segStart, segEnd));
          }
          segBuf = buf;
          segStart = at;
          segEnd = at + ps;
        }
        j++;
      }
      run.push(segBuf!.subarray(segStart, segEnd));
      writeAllSync(this.#fh.fd, run, (first - 1) * ps);
      if (performance.now() - sliceStart > FLUSH_SLICE_MS) {
        await new Promise((r) => setImmediate(r));
        sliceStart = performance.now();
      }
      i = j;
    }
    this.#unsynced += pgnos.length * ps;
  }

  #staging: Buffer | undefined;

  /**
   * Writes the committed pages `pgnos` (in ascending order) on libuv's thread pool, through the
   * binding, from where they are held (slabs and lent chunks): nothing is copied on this thread.
   * Neighbouring pages in one buffer make one run, runs that follow one another in the file one
   * pwritev. The pages' memory is read until the write lands, so this returns only then: the
   * caller may free or reuse them at once.
   */
  async #writePagesOffThread(write: NativePwriteRuns, pgnos: number[]): Promise<void> {
    if (pgnos.length === 0) return;
    const ps = this.#pageSize!;
    const committed = this.#committed;
    const bufs: Buffer[] = [];
    const index = new Map<Buffer, number>();
    const runs = new Float64Array(4 * pgnos.length);
    let n = 0;
    let prevPos = -1;
    let prevBuf = -1;
    let prevEnd = -1;
    for (const pgno of pgnos) {
      const [buf, at] = this.#pageAt(committed.get(pgno)!);
      let k = index.get(buf);
      if (k === undefined) {
        k = bufs.push(buf) - 1;
        index.set(buf, k);
      }
      const pos = (pgno - 1) * ps;
      if (k === prevBuf && at === prevEnd && pos === prevPos) {
        runs[4 * n - 1]! += ps;
      } else {
        runs[4 * n] = pos;
        runs[4 * n + 1] = k;
        runs[4 * n + 2] = at;
        runs[4 * n + 3] = ps;
        n++;
      }
      prevBuf = k;
      prevEnd = at + ps;
      prevPos = pos + ps;
    }
    // Earlier writes may hold older images of these pages: they land first.
    await this.#settleWrites();
    this.#startNativeWrite(write, bufs, runs.subarray(0, 4 * n));
    await this.#settleWrites();
    this.#unsynced += pgnos.length * ps;
  }

  /** The write on the thread pool, if any. */
  #writing: Promise<void> | undefined;

  /** Starts `runs` of `bufs` on the thread pool through the binding, as `#writing`; a failure rejects it with the errno's code. */
  #startNativeWrite(write: NativePwriteRuns, bufs: Buffer[], runs: Float64Array): void {
    const path = this.#path;
    const p = write(this.#fh.fd, bufs, runs).then((r) => {
      if (r < 0) {
        const code = getSystemErrorName(r);
        throw Object.assign(new Error(`${code}: writing pages to ${path}`), { code, errno: r, syscall: 'pwrite', path });
      }
    });
    p.catch(() => undefined);
    this.#writing = p;
  }

  /** Frames written through since the last commit frame. */
  #openFrames = 0;

  /**
   * Counts one frame written through, whose commit field is `commitSize`: at a commit frame, sets
   * the page count and returns the frames of the transaction it ends; else returns 0.
   */
  #framesWrittenThrough(commitSize: number): number {
    this.#openFrames++;
    if (commitSize === 0) return 0;
    const n = this.#openFrames;
    this.#openFrames = 0;
    this.#pageCount = commitSize;
    return n;
  }
  /** Set when the failure is a transaction written through in part (not a failed write). */
  #wroteIncomplete = false;
  /** Sort keys of a write-through batch (page number × 2^21 + frame), reused. */
  #keys = new Float64Array(0);

  /**
   * How a `writeThrough` applier applies frames: the `count` pages at `at`, `at + stride`, ... of
   * `chunk`, numbered `pgnos`, are written to the database file straight from there, the last image
   * of each page in the batch only, in page order, without waiting for their transaction's commit
   * frame. Pages go to the file's page cache, which serves as the buffer, and the input's memory is
   * free again at once instead of being held until a flush: on the WAL apply benchmark (70 MiB of
   * WAL, ~12 MiB transactions, a fresh process) 48–68 ms instead of 80–130 ms, most of the
   * difference page faults on the fresh memory held pages need. The write runs on the thread pool
   * and may still read `chunk` when this returns: `#settleWrites` before the source may reuse it.
   */
  async #writeThrough(chunk: Buffer, at: number, count: number, stride: number, pgnos: ArrayLike<number>): Promise<void> {
    const ps = this.#pageSize!;
    const FRAME_BITS = 2 ** 21;
    for (let from = 0; from < count; from += FRAME_BITS) {
      const n = Math.min(count - from, FRAME_BITS);
      if (this.#keys.length < n) this.#keys = new Float64Array(Math.max(n, 2 * this.#keys.length));
      const keys = this.#keys.subarray(0, n);
      for (let k = 0; k < n; k++) keys[k] = pgnos[from + k]! * FRAME_BITS + k;
      keys.sort();
      const runs = new Float64Array(4 * n);
      let m = 0;
      for (let i = 0; i < n; i++) {
        const pgno = Math.floor(keys[i]! / FRAME_BITS);
        // Only the last image of a page in the batch (the highest frame sorts last).
        if (i + 1 < n && Math.floor(keys[i + 1]! / FRAME_BITS) === pgno) continue;
        const k = keys[i]! - pgno * FRAME_BITS;
        runs[4 * m] = (pgno - 1) * ps;
        runs[4 * m + 1] = 0;
        runs[4 * m + 2] = at + (from + k) * stride;
        runs[4 * m + 3] = ps;
        m++;
      }
      // Earlier writes may hold older images of these pages: they land first.
      await this.#settleWrites();
      this.#writeRuns(chunk, runs.subarray(0, 4 * m));
      this.#unsynced += m * ps;
      this.#backgroundSync();
    }
  }

  /**
   * Starts writing `runs` (file position, 0, offset in `buf`, length) of `buf`: on the thread pool
   * through the binding (`#writing`), or here, at once, without it.
   */
  #writeRuns(buf: Buffer, runs: Float64Array): void {
    const write = nativePwriteRuns();
    if (write) {
      this.#startNativeWrite(write, [buf], runs);
      return;
    }
    try {
      for (let r = 0; r < runs.length; ) {
        const pos = runs[r]!;
        let end = pos;
        const group: Buffer[] = [];
        while (r < runs.length && runs[r] === end && group.length < MAX_IOVECS) {
          group.push(buf.subarray(runs[r + 2]!, runs[r + 2]! + runs[r + 3]!));
          end += runs[r + 3]!;
          r += 4;
        }
        writeAllSync(this.#fh.fd, group, pos);
      }
    } catch (err) {
      this.#failed ??= err;
      throw err;
    }
  }

  /**
   * Waits for the write on the thread pool. Its failure fails the applier: pages of a committed
   * transaction may be missing from the file.
   */
  async #settleWrites(): Promise<void> {
    const p = this.#writing;
    if (p === undefined) return;
    try {
      await p;
    } catch (err) {
      this.#failed ??= err;
      throw err;
    } finally {
      if (this.#writing === p) this.#writing = undefined;
    }
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
  while (done < total) {
    const n = writeSync(fd, rest, done, total - done, position + done);
    if (n <= 0) throw new Error(`short write at offset ${position + done}: the disk may be full`);
    done += n;
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
