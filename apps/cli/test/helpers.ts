import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

/** The real `lstream` binary (runs the built dist/). */
export const LSTREAM_BIN = fileURLToPath(new URL('../bin/lstream.js', import.meta.url));
/** A SQLite writer that runs in its own process. */
export const WRITER = fileURLToPath(new URL('./writer.mjs', import.meta.url));

/** Makes a temp directory removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs `lstream` to completion. */
export function lstream(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) {
  const r = spawnSync(process.execPath, [LSTREAM_BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...options.env },
    cwd: options.cwd,
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs the writer to completion. */
export function write(db: string, args: string[] = []): void {
  const r = spawnSync(process.execPath, [WRITER, db, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`writer failed: ${r.stderr}`);
}

/** A long-running child process whose output lines can be awaited. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  #waiters: { re: RegExp; resolve: (l: string) => void; from: number }[] = [];

  constructor(args: string[], options: { env?: NodeJS.ProcessEnv } = {}) {
    this.child = spawn(process.execPath, args, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        this.lines.push(line);
        this.#check();
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((res) => this.child.on('exit', (code) => res(code)));
  }

  #check(): void {
    this.#waiters = this.#waiters.filter((w) => {
      for (let i = w.from; i < this.lines.length; i++) {
        if (w.re.test(this.lines[i]!)) {
          w.resolve(this.lines[i]!);
          return false;
        }
      }
      return true;
    });
  }

  /** Resolves with the first line (from line `from` on) matching `re`; rejects after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs = 30_000, from = 0): Promise<string> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out waiting for ${re}; output:\n${this.lines.join('\n')}\n${this.stderr}`)), timeoutMs);
      this.#waiters.push({ re, from, resolve: (l) => (clearTimeout(t), resolve(l)) });
      this.#check();
    });
  }

  /** Sends `signal` and resolves with the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Starts `lstream` with `args` as a long-running process. */
export function startLstream(args: string[], env?: NodeJS.ProcessEnv): Proc {
  return new Proc([LSTREAM_BIN, ...args], { env });
}

/** Starts the writer as a long-running process reporting each commit. */
export function startWriter(db: string, args: string[] = []): Proc {
  return new Proc([WRITER, db, '--report', ...args]);
}

/** The rows of table t, as one string per row, and integrity_check's verdict. */
export function dump(path: string): { rows: string[]; integrity: string } {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const rows = (db.prepare('SELECT id, body, n FROM t ORDER BY id').raw().all() as unknown[][]).map((r) => r.join('|'));
    return { rows, integrity: db.pragma('integrity_check', { simple: true }) as string };
  } finally {
    db.close();
  }
}

/** SHA-256 of a file. */
export function sha256(path: string): string {
  return createHash('sha256').update(spawnSync('cat', [path], { maxBuffer: 1 << 30 }).stdout).digest('hex');
}

/**
 * Restores a file replica the way Litestream v0.3 does, without lstream code: `lz4 -d` the latest
 * snapshot at or before `index`, then for each index the concatenated `lz4 -d` segments (up to
 * `lastSegment` when given) as `<db>-wal`, checkpointed by the sqlite3 CLI.
 */
export function litestreamRestore(replicaDir: string, gen: string, index: number, out: string, lastSegment?: string): void {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const snaps = readdirSync(join(replicaDir, 'generations', gen, 'snapshots'))
    .map((n) => parseInt(n.slice(0, 8), 16))
    .filter((i) => i <= index)
    .sort((a, b) => a - b);
  const snap = snaps.at(-1);
  if (snap === undefined) throw new Error(`no snapshot at or before ${index}`);
  run('lz4', ['-d', '-q', join(replicaDir, 'generations', gen, 'snapshots', `${hex(snap)}.snapshot.lz4`), out]);
  const segs = readdirSync(join(replicaDir, 'generations', gen, 'wal')).sort();
  for (let i = snap; i <= index; i++) {
    let wal = Buffer.alloc(0);
    for (const s of segs.filter((n) => n.startsWith(`${hex(i)}_`))) {
      if (lastSegment !== undefined && s > lastSegment) break;
      const r = spawnSync('lz4', ['-d', '-c', join(replicaDir, 'generations', gen, 'wal', s)], { maxBuffer: 1 << 30 });
      if (r.status !== 0) throw new Error(`lz4 -d ${s}: ${r.stderr}`);
      wal = Buffer.concat([wal, r.stdout]);
    }
    if (wal.length === 0) continue;
    writeFileSync(`${out}-wal`, wal);
    run('sqlite3', [out, 'PRAGMA wal_checkpoint(TRUNCATE);']);
    rmSync(`${out}-wal`, { force: true });
    rmSync(`${out}-shm`, { force: true });
  }
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

/** Sleeps. */
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `lstream` to completion without blocking this process's event loop (needed when the test
 * process itself hosts the storage server the command talks to).
 */
export function lstreamAsync(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LSTREAM_BIN, ...args], { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
