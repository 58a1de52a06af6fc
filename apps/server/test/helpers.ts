import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Proc } from '../../cli/test/helpers.js';

export { dump, lstream, Proc, startWriter, tempDir, write } from '../../cli/test/helpers.js';

/** The real `lstream-server` binary (runs the built dist/). */
export const SERVER_BIN = fileURLToPath(new URL('../bin/lstream-server.js', import.meta.url));

/** A running `lstream-server` and the base URL it printed. */
export interface Server {
  proc: Proc;
  url: string;
  port: number;
}

/** Starts `lstream-server` with `args` and waits for it to listen. */
export async function startServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Server> {
  const proc = new Proc([SERVER_BIN, ...args], { env: { LSTREAM_SERVER_TOKEN: '', ...env } });
  const line = await proc.waitFor(/msg=serving /);
  const port = Number(/addr=\S*:(\d+)/.exec(line)![1]);
  return { proc, port, url: `http://127.0.0.1:${port}` };
}

/** Runs `lstream-server` to completion. */
export function runServer(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SERVER_BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Polls `fn` until it returns a value other than undefined and returns it. `deadlineMs` only stops a
 * hung test with the last observation; nothing here asserts how fast things happen.
 */
export async function until<T>(what: string, fn: () => Promise<T | undefined>, deadlineMs = 90_000): Promise<T> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}${last ? `; last error: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Reads the value of metric `name` for database `db` from a Prometheus text exposition. */
export function metricValue(text: string, name: string, db: string): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!line.includes(`db="${db}"`)) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

/** The replica entry `replica` of database `db` in a /api/v1/databases response. */
export interface ReplicaJson {
  name: string;
  state: string;
  lagMs: number;
  lagLimitMs: number;
  position: string | null;
  lastError: string | null;
  snapshotCount: number;
  generations: { id: string; snapshots: { index: number }[] }[];
}

/** Fetches /api/v1/databases and returns the entry of `replica` in database `db`. */
export async function replicaStatus(url: string, db: string, replica: string, token?: string): Promise<ReplicaJson | undefined> {
  const res = await fetch(`${url}/api/v1/databases`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`GET /api/v1/databases: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { databases: { name: string; replicas: ReplicaJson[] }[] };
  return body.databases.find((d) => d.name === db)?.replicas.find((r) => r.name === replica);
}

/** Sends SIGTERM and resolves with the exit code; rejects when the process is still running after `deadlineMs`. */
export async function stopWithin(proc: Proc, deadlineMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running ${deadlineMs} ms after ${signal}`)), deadlineMs);
  });
  try {
    return await Promise.race([proc.stop(signal), late]);
  } finally {
    clearTimeout(timer);
  }
}
