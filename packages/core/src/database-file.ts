import { open, stat, type FileHandle } from 'node:fs/promises';

/*
 * POSIX advisory locks belong to the process, and closing any descriptor of a file releases every
 * lock the process holds on it: also the locks SQLite's connections took through their own
 * descriptors (lstream's, and the app's when lstream runs inside it). Without the SHARED lock those
 * connections hold on the database file, another process closing its last connection takes itself
 * for the last one: it checkpoints what it can, deletes the WAL with the transactions it could not
 * checkpoint, and the database is corrupt. Reading a 200 MB database for a snapshot with a
 * descriptor of its own, then closing it, did exactly that to a database the sqlite3 CLI wrote to.
 *
 * So lstream reads a database file only through the one descriptor this module keeps per file
 * (device and inode), and closes it only once that file is no longer at its path: a file replaced
 * or removed is out of any other process's reach by path. A file still in place keeps its
 * descriptor for the life of the process, for the next Db that opens it (SQLite itself keeps the
 * descriptors it cannot close yet the same way).
 */
const held = new Map<string, DatabaseFile>();
/** Descriptors opened for a file already held (the path changed between stat and open): never closed. */
const strays: FileHandle[] = [];

const keyOf = (dev: bigint, ino: bigint) => `${dev}:${ino}`;

/** A read-only descriptor of a database file, shared by its users; see `DatabaseFile.acquire`. */
export class DatabaseFile {
  readonly #path: string;
  readonly #key: string;
  #users = 0;

  private constructor(
    path: string,
    /** The descriptor. Read it at explicit positions; never close it (`release` does what is safe). */
    readonly fh: FileHandle,
    readonly dev: bigint,
    readonly ino: bigint,
  ) {
    this.#path = path;
    this.#key = keyOf(dev, ino);
  }

  /**
   * The descriptor of the file now at `path`, opened if this process does not hold one yet. Every
   * acquire (and retain) is paired with one `release`. Rejects as `open` does (ENOENT, EACCES).
   */
  static async acquire(path: string): Promise<DatabaseFile> {
    const st = await stat(path, { bigint: true });
    const known = held.get(keyOf(st.dev, st.ino));
    if (known) return known.retain();
    // A descriptor left for a file that has since been replaced at this path is no longer needed.
    for (const f of [...held.values()]) if (f.#path === path && f.#users === 0) await f.#forget();
    const fh = await open(path, 'r');
    let fst;
    try {
      fst = await fh.stat({ bigint: true });
    } catch (err) {
      // Nothing read through it yet, but it may already be a second descriptor of a held file.
      strays.push(fh);
      throw err;
    }
    const again = held.get(keyOf(fst.dev, fst.ino));
    if (again) {
      // The path moved to a file held already, between the stat and the open: this descriptor
      // cannot be closed either, and the held one serves.
      strays.push(fh);
      return again.retain();
    }
    const file = new DatabaseFile(path, fh, fst.dev, fst.ino);
    held.set(file.#key, file);
    return file.retain();
  }

  /** One more user of the same descriptor (released separately). */
  retain(): DatabaseFile {
    this.#users++;
    return this;
  }

  /**
   * Ends one use. The descriptor is closed only when nobody uses it and its file is no longer at
   * its path; otherwise it stays open, held for the next user.
   */
  async release(): Promise<void> {
    if (this.#users <= 0) throw new Error(`${this.#path}: database file released more often than acquired`);
    if (--this.#users > 0) return;
    let inPlace = true;
    try {
      const st = await stat(this.#path, { bigint: true });
      inPlace = st.dev === this.dev && st.ino === this.ino;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') inPlace = false;
    }
    // Acquired again while the stat ran, or still in place: keep it.
    if (this.#users > 0 || inPlace) return;
    await this.#forget();
  }

  async #forget(): Promise<void> {
    if (held.get(this.#key) !== this) return;
    held.delete(this.#key);
    await this.fh.close();
  }
}

/** How many database descriptors this process holds (for tests and diagnostics). */
export function heldDatabaseFiles(): number {
  return held.size + strays.length;
}
