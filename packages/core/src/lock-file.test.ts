import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import { LOCK_HEARTBEAT_MS, LOCK_STALE_MS, LockFile, LockedError, processIdentity } from './lock-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lstream-lock-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const holder = (pid: number, host: string) => JSON.stringify({ pid, host, startedAt: '2026-01-01T00:00:00Z' });

describe('LockFile', () => {
  it('refuses a lock this process holds, and frees it on release', async () => {
    const path = join(dir, 'a');
    const lock = await LockFile.acquire(path, 'thing');
    await expect(LockFile.acquire(path, 'thing')).rejects.toBeInstanceOf(LockedError);
    await lock.release();
    await (await LockFile.acquire(path, 'thing')).release();
  });

  it('refuses a fresh lock of a live process, naming it', async () => {
    const path = join(dir, 'b');
    await writeFile(path, holder(1, hostname())); // pid 1 is alive
    const err = await LockFile.acquire(path, 'thing').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockedError);
    expect((err as LockedError).holder?.pid).toBe(1);
  });

  it('takes over a lock left by a dead process, by an earlier run with our pid, or not refreshed for long', async () => {
    const dead = join(dir, 'c');
    await writeFile(dead, holder(2 ** 22 + 12345, hostname()));
    await (await LockFile.acquire(dead, 'thing')).release();

    // A container restarted with the same pid (and often the same hostname).
    const samePid = join(dir, 'd');
    await writeFile(samePid, holder(process.pid, hostname()));
    await (await LockFile.acquire(samePid, 'thing')).release();

    // Another host or container: its pid cannot be checked, only its heartbeat.
    const other = join(dir, 'e');
    await writeFile(other, holder(1, 'another-host'));
    await expect(LockFile.acquire(other, 'thing')).rejects.toBeInstanceOf(LockedError);
    const old = new Date(Date.now() - LOCK_STALE_MS - 5_000);
    await utimes(other, old, old);
    await (await LockFile.acquire(other, 'thing')).release();
  });
  it.skipIf(processIdentity(process.pid) === undefined)('keeps the lock of a holder still running here however old its last refresh (a paused process), and not of a reused pid', async () => {
    // A real process, stopped as SIGSTOP or `docker pause` would: its lock file is not refreshed.
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      await new Promise((r) => child.once('spawn', r));
      child.kill('SIGSTOP');
      const pid = child.pid!;
      const paused = join(dir, 'paused');
      const old = new Date(Date.now() - LOCK_STALE_MS - 60_000);
      await writeFile(paused, JSON.stringify({ pid, host: hostname(), startedAt: '2026-01-01T00:00:00Z', process: processIdentity(pid) }));
      await utimes(paused, old, old);
      const err = await LockFile.acquire(paused, 'thing').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockedError);
      expect((err as LockedError).holder?.pid).toBe(pid);
      // The same pid, but another process than the one that wrote the lock (a pid reused since).
      const reused = join(dir, 'reused');
      await writeFile(reused, JSON.stringify({ pid, host: hostname(), startedAt: '2026-01-01T00:00:00Z', process: 'another-boot:1' }));
      await utimes(reused, old, old);
      await (await LockFile.acquire(reused, 'thing')).release();
    } finally {
      child.kill('SIGKILL');
    }
  });

  it.skipIf(processIdentity(process.pid) === undefined)('lets the lock of a crashed holder that nobody reaped (a zombie) go stale', async () => {
    // `sleep 0` exits and stays a zombie: its parent shell has become `sleep 30`, which never reaps it.
    const sh = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const pid = Number(await new Promise<string>((r) => sh.stdout.once('data', (d: Buffer) => r(d.toString().trim()))));
      const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
      let stat = '';
      for (let i = 0; i < 100 && !/\) Z /.test(stat); i++) {
        stat = await readFile(`/proc/${pid}/stat`, 'utf8');
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(stat).toMatch(/\) Z /);
      const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      const path = join(dir, 'zombie');
      await writeFile(path, JSON.stringify({ pid, host: hostname(), startedAt: '2026-01-01T00:00:00Z', process: `${boot}:${start}` }));
      const old = new Date(Date.now() - LOCK_STALE_MS - 60_000);
      await utimes(path, old, old);
      await (await LockFile.acquire(path, 'thing')).release();
      // Also at once, before its last refresh grows old: a holder killed with SIGKILL whose parent
      // has not reaped it yet (a container's init may take a while) is gone, not running.
      await writeFile(path, JSON.stringify({ pid, host: hostname(), startedAt: '2026-01-01T00:00:00Z', process: `${boot}:${start}` }));
      await (await LockFile.acquire(path, 'thing')).release();
      await writeFile(path, JSON.stringify({ pid, host: hostname(), startedAt: '2026-01-01T00:00:00Z' }));
      await (await LockFile.acquire(path, 'thing')).release();
    } finally {
      sh.kill('SIGKILL');
    }
  });
});

describe('LockFile heartbeat', () => {
  it('writes the lock file again when it is removed behind the holder (its directory wiped), so a second holder is still refused', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const sub = join(dir, 'wiped');
      await mkdir(sub);
      const path = join(sub, 'lock');
      const lock = await LockFile.acquire(path, 'thing');
      await rm(sub, { recursive: true, force: true });
      vi.advanceTimersByTime(LOCK_HEARTBEAT_MS);
      await vi.waitFor(async () => {
        expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid, what: 'thing' });
      });
      await expect(LockFile.acquire(path, 'thing')).rejects.toBeInstanceOf(LockedError);
      await lock.release();
      await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      vi.useRealTimers();
    }
  });

  it('finds a takeover by another process (while this one was paused), reports it once, and leaves that process its file', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const path = join(dir, 'taken');
      const lost: unknown[] = [];
      const lock = await LockFile.acquire(path, 'thing', { onLost: (h) => lost.push(h) });
      const other = JSON.stringify({ pid: 4242, host: 'another-host', startedAt: '2026-11-27T00:00:00Z', what: 'thing' });
      await writeFile(path, other);
      vi.advanceTimersByTime(LOCK_HEARTBEAT_MS);
      await vi.waitFor(() => expect(lost).toHaveLength(1));
      expect(lost[0]).toMatchObject({ pid: 4242, host: 'another-host' });
      expect(lock.lost).toBe(true);
      vi.advanceTimersByTime(3 * LOCK_HEARTBEAT_MS);
      await lock.release();
      expect(lost).toHaveLength(1);
      expect(await readFile(path, 'utf8')).toBe(other);
    } finally {
      vi.useRealTimers();
    }
  });
});
