import { hostname } from 'node:os';
import { open, readFile, rm } from 'node:fs/promises';
import { LstreamError } from './errors.js';

/** Raised when another lstream process already replicates a database or owns a replica path. */
export class LockedError extends LstreamError {
  constructor(
    message: string,
    readonly holder: LockHolder | undefined,
  ) {
    super('ELOCKED', message);
  }
}

/** Who holds a lock file. */
export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  what?: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * An exclusive lock held through a file that names its holder. A lock whose holder process is gone
 * (same host, pid not running) is stale and taken over.
 */
export class LockFile {
  private constructor(readonly path: string) {}

  /** Takes the lock at `path`, or rejects with LockedError naming the live holder. */
  static async acquire(path: string, what: string): Promise<LockFile> {
    const me: LockHolder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), what };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fh = await open(path, 'wx', 0o644);
        try {
          await fh.writeFile(JSON.stringify(me) + '\n');
          await fh.sync();
        } finally {
          await fh.close();
        }
        return new LockFile(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let holder: LockHolder | undefined;
      try {
        holder = JSON.parse(await readFile(path, 'utf8')) as LockHolder;
      } catch {
        holder = undefined; // unreadable or half-written: treat as stale only if it stays so
      }
      const stale = holder ? holder.host === me.host && holder.pid !== process.pid && !alive(holder.pid) : attempt > 0;
      if (!stale) {
        const who = holder ? `process ${holder.pid} on ${holder.host} (since ${holder.startedAt})` : 'another process';
        throw new LockedError(
          `${what} is already being replicated by ${who}; stop it first, or remove ${path} if that process is gone`,
          holder,
        );
      }
      await rm(path, { force: true });
    }
    throw new LockedError(`could not take the lock ${path}`, undefined);
  }

  /** Releases the lock. */
  async release(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
