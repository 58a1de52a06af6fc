import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FORCED_EXIT_CODE } from './exec.js';

// The stop-signal handling exits the process, so it runs in a child: a script that installs it
// (from the built package, as the lstream and lstream-server binaries do), adopts a long-running
// exec child, and then never finishes its shutdown.
const DIST = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
const SCRIPT = `
import { spawn } from 'node:child_process';
import { handleStopSignals } from ${JSON.stringify(DIST)};
const line = (level) => (msg, fields) => process.stdout.write(JSON.stringify({ level, msg, ...fields }) + '\\n');
const logger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
const stop = handleStopSignals(logger, { deadlineMs: Number(process.argv[2]) });
const child = spawn('sleep', ['60'], { stdio: 'ignore' });
stop.adopt(child);
process.stdout.write(JSON.stringify({ ready: true, child: child.pid }) + '\\n');
setInterval(() => {}, 1000);
await stop.stopped;
await new Promise(() => {}); // a final sync that never ends
`;

let dir: string;
let script: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lstream-exec-'));
  script = join(dir, 'hang.mjs');
  await writeFile(script, SCRIPT);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** True once `pid` is gone or a zombie waiting to be reaped (it runs no more). */
function notRunning(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return true;
  try {
    return readFileSync(stat, 'utf8').split(') ')[1]?.startsWith('Z') ?? true;
  } catch {
    return true;
  }
}

async function hangingShutdown(deadlineMs: number, signals: number) {
  const proc = spawn(process.execPath, [script, String(deadlineMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
  const deadline = Date.now() + 20_000;
  while (!out.includes('"ready"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const readyLine = out.split('\n').find((l) => l.includes('"ready"'));
  if (!readyLine) {
    proc.kill('SIGKILL');
    throw new Error(`the test script did not start (is @ls/config built? pnpm build):\n${out}`);
  }
  const ready = JSON.parse(readyLine) as { child: number };
  for (let i = 0; i < signals; i++) {
    proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 50));
  }
  const code = await exited;
  let gone = notRunning(ready.child);
  for (let i = 0; i < 100 && !gone; i++) {
    await new Promise((r) => setTimeout(r, 20));
    gone = notRunning(ready.child);
  }
  return { code, out, childGone: gone };
}

describe('handleStopSignals', () => {
  it('exits with code 1, saying so, when the shutdown outlasts its deadline, and kills the exec child', async () => {
    const r = await hangingShutdown(400, 1);
    expect(r.code).toBe(1);
    expect(r.out).toContain('signal received, stopping');
    expect(r.out).toContain('shutdown did not finish in time');
    expect(r.childGone).toBe(true);
  }, 30_000);

  it('exits at once with the forced-exit code on a second signal, and kills the exec child', async () => {
    const r = await hangingShutdown(60_000, 2);
    expect(r.code).toBe(FORCED_EXIT_CODE);
    expect(r.out).toContain('second signal, exiting without a final sync');
    expect(r.out).not.toContain('did not finish in time');
    expect(r.childGone).toBe(true);
  }, 30_000);
});
