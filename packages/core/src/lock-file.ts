import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat, utimes } from 'node:fs/promises';
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
  /**
   * Which process `pid` is, where the system says (Linux: boot id and the process's start time), so
   * a reused pid, or a pid of another container, is not taken for the holder.
   */
  process?: string;
}

let bootId: string | undefined | null = null;

/**
 * Fields of /proc/PID/stat after the process name (field 2, which may hold spaces): [0] is the state
 * (field 3), [19] the start time (field 22). Throws where /proc cannot be read or `pid` is gone.
 */
function procStat(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** True for the state of a process that has exited: a zombie (not reaped by its parent yet) or dead. */
function exited(state: string | undefined): boolean {
  return state === 'Z' || state === 'X';
}

/** The identity of process `pid` on this machine (Linux), or undefined where it cannot be read. */
export function processIdentity(pid: number): string | undefined {
  try {
    if (bootId === null) bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    // The start time in clock ticks since boot. A zombie (crashed, not reaped) is not running.
    const fields = procStat(pid);
    if (exited(fields[0])) return undefined;
    const start = fields[19];
    return bootId && start ? `${bootId}:${start}` : undefined;
  } catch {
    bootId ??= undefined;
    return undefined;
  }
}

/** Whether process `pid` runs here. A zombie (exited, not yet reaped by its parent) does not. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return !exited(procStat(pid)[0]);
  } catch {
    // No /proc (not Linux), or it exited just now: kill's answer stands.
    return true;
  }
}

function parseHolder(text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text) as LockHolder;
    return typeof h === 'object' && h !== null && typeof h.pid === 'number' ? h : undefined;
  } catch {
    return undefined; // half-written: not proof of anything
  }
}

/** Creates the lock file at `path` naming `holder`; rejects with EEXIST when it exists. */
async function writeHolder(path: string, holder: LockHolder): Promise<void> {
  const fh = await open(path, 'wx', 0o644);
  try {
    await fh.writeFile(JSON.stringify(holder) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Lock files this process holds right now (so its own pid in a lock file is not mistaken for a previous run). */
const held = new Set<string>();

/** How often a holder refreshes its lock file's mtime. */
export const LOCK_HEARTBEAT_MS = 10_000;
/** A lock file not refreshed for this long is stale, whoever wrote it (another host, another container). */
export const LOCK_STALE_MS = 45_000;

/**
 * An exclusive lock held through a file that names its holder, refreshed every few seconds. A lock is
 * stale, and taken over, when its holder is gone: a dead pid on this host, our own pid (a previous run
 * in a container that reuses pids), or no refresh for LOCK_STALE_MS (a holder on another host or in
 * another container, whose pid cannot be checked). A holder this host's system still shows running
 * (same pid, boot and start time) is never stale, however old its last refresh.
 */
export class LockFile {
  #heartbeat: NodeJS.Timeout | undefined;
  /** Another process holds the lock file now: it is theirs, and release leaves it alone. */
  #lost = false;

  private constructor(
    readonly path: string,
    holder: LockHolder,
    onLost: ((holder: LockHolder) => void) | undefined,
  ) {
    this.#heartbeat = setInterval(() => {
      const now = new Date();
      // A failed refresh only shortens how long the lock looks fresh; the next one retries. A lock
      // file removed behind the holder's back (its directory wiped) is written again, so a second
      // lstream started meanwhile is still refused. One that names another holder was taken over
      // while this process could not refresh it (paused longer than LOCK_STALE_MS on another host or
      // in another container): this process has lost it.
      readFile(path, 'utf8')
        .then(async (text) => {
          const current = parseHolder(text);
          if (current && (current.pid !== holder.pid || current.host !== holder.host || current.startedAt !== holder.startedAt)) {
            if (!this.#heartbeat) return;
            clearInterval(this.#heartbeat);
            this.#heartbeat = undefined;
            this.#lost = true;
            held.delete(resolve(path));
            onLost?.(current);
            return;
          }
          await utimes(path, now, now);
        })
        .catch(async (err: unknown) => {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !this.#heartbeat) return;
          await mkdir(dirname(path), { recursive: true });
          await writeHolder(path, holder);
          // Released meanwhile: the lock must not outlive its holder.
          if (!this.#heartbeat) await rm(path, { force: true });
        })
        .catch(() => undefined);
    }, LOCK_HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** True once another process took the lock over (see `acquire`'s `onLost`). */
  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Takes the lock at `path`, or rejects with LockedError naming the live holder. `onLost` hears of
   * a takeover found by the heartbeat: the holder must stop what the lock guards.
   */
  static async acquire(path: string, what: string, options: { onLost?: (holder: LockHolder) => void } = {}): Promise<LockFile> {
    const identity = processIdentity(process.pid);
    const me: LockHolder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), what, ...(identity ? { process: identity } : {}) };
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await writeHolder(path, me);
        held.add(resolve(path));
        return new LockFile(path, me, options.onLost);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let holder: LockHolder | undefined;
      try {
        holder = JSON.parse(await readFile(path, 'utf8')) as LockHolder;
      } catch {
        holder = undefined; // unreadable or half-written: treat as stale only if it stays so
      }
      let age = 0;
      try {
        age = Date.now() - (await stat(path)).mtimeMs;
      } catch {
        continue; // removed meanwhile: try to create it again
      }
      const sameHost = holder?.host === me.host;
      const mine = held.has(resolve(path));
      // A holder known to be running here holds the lock however long since its last refresh: it may
      // have been paused (SIGSTOP, `docker pause`, a suspended VM) and will go on when resumed.
      const running = sameHost && holder?.process !== undefined && holder.pid !== process.pid && processIdentity(holder.pid) === holder.process;
      const stale =
        !mine &&
        !running &&
        (age > LOCK_STALE_MS || (holder ? sameHost && (holder.pid === process.pid || !alive(holder.pid)) : attempt > 0));
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

  /** Releases the lock (a lock taken over by another process is theirs: its file stays). */
  async release(): Promise<void> {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    if (this.#lost) return;
    held.delete(resolve(this.path));
    await rm(this.path, { force: true });
  }
}
