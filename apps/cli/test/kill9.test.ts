// kill -9 of `lstream replicate` at random moments, 20 times, while an app keeps writing: every
// transaction lstream reported durable survives in the replica, and the replica always restores to
// a database that passes integrity_check.
import { closeSync, openSync, readFileSync, readSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { dump, lstream, sleep, startLstream, startWriter, tempDir, write } from './helpers.js';

const CYCLES = 20;
let dir: string;
let cleanup: () => void;
beforeAll(() => ({ dir, cleanup } = tempDir('lstream-kill9-')));
afterAll(() => cleanup());

/** The end of the last committed transaction in the WAL, and its header, read without SQLite. */
function walCommitEnd(walPath: string): { header: Buffer; end: number } {
  const buf = readFileSync(walPath);
  const header = buf.subarray(0, 32);
  const pageSize = header.readUInt32BE(8);
  const salt = header.subarray(16, 24);
  const frame = 24 + pageSize;
  let end = 32;
  // Salts alone bound the current WAL here: the writer is paused between transactions, so no frame is half-written.
  for (let off = 32; off + frame <= buf.length; off += frame) {
    if (!buf.subarray(off + 8, off + 16).equals(salt)) break;
    if (buf.readUInt32BE(off + 4) !== 0) end = off + frame;
  }
  return { header: Buffer.from(header), end };
}

/** Finds lstream's generation and shadow index whose header equals `header`. */
function shadowIndexOf(metaDir: string, header: Buffer): { gen: string; index: number } | undefined {
  let gen: string;
  try {
    gen = readFileSync(join(metaDir, 'generation'), 'utf8').trim();
  } catch {
    return undefined;
  }
  const walDir = join(metaDir, 'generations', gen, 'wal');
  for (const name of readdirSync(walDir)) {
    if (!name.endsWith('.wal')) continue;
    const fd = openSync(join(walDir, name), 'r');
    const h = Buffer.alloc(32);
    readSync(fd, h, 0, 32, 0);
    closeSync(fd);
    if (h.equals(header)) return { gen, index: parseInt(name.slice(0, 8), 16) };
  }
  return undefined;
}

it(`never loses a transaction reported durable across ${CYCLES} kill -9 cycles`, async () => {
  const db = join(dir, 'app.db');
  const replica = join(dir, 'replica');
  const configPath = join(dir, 'lstream.yml');
  writeFileSync(
    configPath,
    `dbs:\n  - path: ${db}\n    min-checkpoint-page-count: 60\n    replicas:\n      - url: file://${replica}\n        sync-interval: 0s\n`,
  );
  write(db, ['--rows', '1']);
  const writer = startWriter(db, ['--rows', '0', '--batch', '2', '--size', '300', '--interval-ms', '3']);
  await writer.waitFor(/committed/);
  // Pausing goes through the writer itself, so it always stops between transactions: a SIGSTOP could
  // land between SQLite's frame-header and page writes and leave a half-written commit in the WAL.
  const pause = async (): Promise<number> => {
    const from = writer.lines.length;
    writer.child.kill('SIGUSR1');
    const line = await writer.waitFor(/^paused /, 10_000, from);
    return Number(line.split(' ')[1]);
  };
  await pause();
  let durableId = 0;
  const metaDir = join(dir, '.app.db-litestream');

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replicating database"/);
    writer.child.kill('SIGUSR2');
    await sleep(50 + Math.random() * 300);
    const lastId = await pause();

    // Wait until lstream logs a durable position covering the WAL's last commit.
    const { header, end } = walCommitEnd(`${db}-wal`);
    let target: { gen: string; index: number } | undefined;
    for (let i = 0; i < 200 && !(target = shadowIndexOf(metaDir, header)); i++) await sleep(25);
    expect(target, 'lstream never copied the current WAL').toBeDefined();
    const hex = target!.index.toString(16).padStart(8, '0');
    await rep.waitFor(new RegExp(`msg="replica synced".*position=${target!.gen}/([0-9a-f]{8}):(\\d+)`), 15_000);
    for (let i = 0; ; i++) {
      const covered = rep.lines.some((l) => {
        const m = /msg="replica synced".*position=([0-9a-f]{16})\/([0-9a-f]{8}):(\d+)/.exec(l);
        return m && m[1] === target!.gen && (m[2]! > hex || (m[2] === hex && Number(m[3]) >= end));
      });
      if (covered) break;
      if (i > 400) throw new Error(`lstream never reported ${target!.gen}/${hex}:${end} durable:\n${rep.lines.slice(-5).join('\n')}`);
      await sleep(25);
    }
    durableId = lastId;

    // Let the app write again and kill lstream at a random moment.
    writer.child.kill('SIGUSR2');
    await sleep(Math.random() * 250);
    rep.child.kill('SIGKILL');
    await rep.exited;

    const out = join(dir, `restore-${cycle}.db`);
    const r = lstream(['restore', '-o', out, `file://${replica}`]);
    expect(r.code, r.stderr).toBe(0);
    const { rows, integrity } = dump(out);
    expect(integrity).toBe('ok');
    const ids = new Set(rows.map((row) => Number(row.split('|')[0])));
    for (let id = 1; id <= durableId; id++) {
      if (!ids.has(id)) throw new Error(`cycle ${cycle}: row ${id} was reported durable but is missing from the replica`);
    }
    await pause();
  }

  writer.child.kill('SIGUSR2');
  expect(await writer.stop()).toBe(0);
  const rep = startLstream(['replicate', '-config', configPath]);
  await rep.waitFor(/msg="replica synced"/);
  expect(await rep.stop()).toBe(0);
  const out = join(dir, 'final.db');
  expect(lstream(['restore', '-o', out, `file://${replica}`]).code).toBe(0);
  const final = dump(out);
  expect(final.integrity).toBe('ok');
  expect(final.rows).toEqual(dump(db).rows);
}, 300_000);
