// End to end: the real `lstream` binary replicates a database written by a separate process, and
// restores it; Litestream's own restore procedure (lz4 CLI + sqlite3 CLI) reads what it wrote.
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LSTREAM_BIN, dump, litestreamRestore, lstream, sleep, startLstream, startWriter, tempDir, write } from './helpers.js';

let dir: string;
let cleanup: () => void;
beforeAll(() => ({ dir, cleanup } = tempDir('lstream-e2e-')));
afterAll(() => cleanup());

function config(name: string, extra = '', replicaExtra = ''): { db: string; replica: string; configPath: string } {
  const db = join(dir, `${name}.db`);
  const replica = join(dir, `${name}-replica`);
  const configPath = join(dir, `${name}.yml`);
  writeFileSync(
    configPath,
    `dbs:
  - path: ${db}
    min-checkpoint-page-count: 40
${extra}    replicas:
      - url: file://${replica}
        sync-interval: 0s
${replicaExtra}`,
  );
  return { db, replica, configPath };
}

function generationsOf(replica: string): string[] {
  return existsSync(join(replica, 'generations')) ? readdirSync(join(replica, 'generations')).sort() : [];
}

/**
 * Replicates `db` with `configPath` while a writer makes 300 commits over several WAL indexes, stops,
 * and returns the first generation of `replica` with its WAL directory and sorted segment names.
 */
async function replicateSomeCommits(db: string, replica: string, configPath: string) {
  write(db, ['--rows', '10']);
  const rep = startLstream(['replicate', '-config', configPath]);
  await rep.waitFor(/msg="replica synced"/);
  write(db, ['--rows', '300', '--batch', '3', '--interval-ms', '5']);
  await sleep(300);
  expect(await rep.stop()).toBe(0);
  const [gen] = generationsOf(replica);
  const walDir = join(replica, 'generations', gen!, 'wal');
  return { gen: gen!, walDir, segs: readdirSync(walDir).sort() };
}

describe('lstream replicate and restore', () => {
  it('never applies the WAL of a database moved away to the database moved into its place', async () => {
    const { db, configPath } = config('swap');
    write(db, ['--rows', '10']);
    const rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replica synced"/);
    // The app commits and closes: with lstream's connection open, SQLite leaves the WAL in place.
    write(db, ['--rows', '60', '--batch', '2']);
    expect(existsSync(`${db}-wal`)).toBe(true);
    // Another database is moved into place, as is safe without lstream.
    const other = join(dir, 'swap-other.db');
    write(other, ['--rows', '3']);
    const o = new Database(other);
    o.exec('CREATE TABLE marker (x); INSERT INTO marker VALUES (42)');
    o.close();
    renameSync(other, db);
    await rep.waitFor(/msg="new generation".*reason="database file replaced"/);
    // The database at the path is the one moved there, intact, and the app can go on writing to it.
    const after = new Database(db);
    expect(after.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(after.prepare('SELECT x FROM marker').pluck().get()).toBe(42);
    expect(after.prepare('SELECT count(*) FROM t').pluck().get()).toBe(3);
    after.close();
    write(db, ['--rows', '5']);
    expect(await rep.stop('SIGTERM')).toBe(0);
    expect(rep.lines.some((l) => l.includes("moved the replaced database's WAL aside"))).toBe(true);
    const out = join(dir, 'swap-restored.db');
    expect(lstream(['restore', '-config', configPath, '-o', out, '-integrity-check', db]).code).toBe(0);
    expect(dump(out).rows).toEqual(dump(db).rows);
  });

  it('replicates a database written by another process, stops with a final sync, and restores it row for row', async () => {
    const { db, replica, configPath } = config('basic');
    write(db, ['--rows', '50']);
    const rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replica synced"/);
    const writer = startWriter(db, ['--rows', '2000', '--batch', '10', '--size', '400', '--interval-ms', '2']);
    expect(await writer.exited).toBe(0);
    expect(await rep.stop('SIGTERM')).toBe(0);
    expect(rep.lines.some((l) => l.includes('stopped after a final sync'))).toBe(true);

    const out = join(dir, 'basic-restored.db');
    const r = lstream(['restore', '-config', configPath, '-o', out, '-integrity-check', db]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const source = dump(db);
    const restored = dump(out);
    expect(restored.integrity).toBe('ok');
    expect(restored.rows.length).toBe(2050);
    expect(restored.rows).toEqual(source.rows);
    expect(existsSync(`${out}.tmp`)).toBe(false);

    // The listings work in config and URL mode, with Litestream's columns.
    const gens = lstream(['generations', '-config', configPath, db]);
    expect(gens.code).toBe(0);
    expect(gens.stdout.split('\n')[0]).toMatch(/^name\s+generation\s+lag\s+start\s+end$/);
    const wal = lstream(['wal', '--json', `file://${replica}`]);
    const segs = JSON.parse(wal.stdout) as { index: number; offset: number }[];
    expect(segs.length).toBeGreaterThan(3);
    const snaps = lstream(['snapshots', `file://${replica}`]);
    expect(snaps.stdout.split('\n')[0]).toMatch(/^replica\s+generation\s+index\s+size\s+created$/);
    const firstSnapshot = Number(snaps.stdout.split('\n')[1]!.split(/\s+/)[2]);
    expect(segs[0]).toMatchObject({ index: firstSnapshot, offset: 0 });
    const dbs = lstream(['databases', '-config', configPath]);
    expect(dbs.stdout).toContain(db);
  });

  it('stops on SIGHUP (a closed terminal) with a final sync that ships the last commits', async () => {
    const { db, configPath } = config('hangup');
    write(db, ['--rows', '20']);
    const rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replica synced"/);
    write(db, ['--rows', '300', '--batch', '30']);
    expect(await rep.stop('SIGHUP')).toBe(0);
    expect(rep.lines.some((l) => l.includes('stopped after a final sync'))).toBe(true);
    const out = join(dir, 'hangup-restored.db');
    const r = lstream(['restore', '-config', configPath, '-o', out, db]);
    expect(r.code).toBe(0);
    expect(dump(out).rows).toEqual(dump(db).rows);
  });

  it('makes a final sync and exits 0 when its terminal closes, logging to a file or to the terminal itself', async () => {
    const { db, replica, configPath } = config('terminal');
    write(db, ['--rows', '20']);
    const log = join(dir, 'terminal.log');
    const pty = fileURLToPath(new URL('./pty-hangup.py', import.meta.url));
    const hangup = (shell: string, ready: string) =>
      spawnSync('python3', [pty, ready, '20', 'sh', '-c', shell], { encoding: 'utf8', timeout: 60_000 }).stdout.trim();
    // Terminal on stdin and stderr, log in a file; the script shows READY once replication is up.
    const cmd = `"${process.execPath}" "${LSTREAM_BIN}" replicate -config "${configPath}"`;
    const watch = `(while ! grep -q 'replica synced' "${log}" 2>/dev/null; do sleep 0.1; done; echo READY) &`;
    expect(hangup(`${watch} exec ${cmd} > "${log}"`, 'READY')).toBe('exit 0');
    expect(readFileSync(log, 'utf8')).toContain('stopped after a final sync');
    // Everything on the terminal: every log line after the hangup is lost, and that stops nothing.
    write(db, ['--rows', '30']);
    expect(hangup(`exec ${cmd}`, 'replica synced')).toBe('exit 0');
    const out = join(dir, 'terminal-restored.db');
    expect(lstream(['restore', '-o', out, `file://${replica}`]).code).toBe(0);
    expect(dump(out).rows).toEqual(dump(db).rows);
  });

  it('says in one line, with exit code 1, when its output cannot be written', async () => {
    const { db, replica, configPath } = config('output');
    write(db, ['--rows', '20']);
    const rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replica synced"/);
    expect(await rep.stop()).toBe(0);
    const run = (shell: string) => spawnSync('sh', ['-c', shell], { encoding: 'utf8' });
    const full = run(`"${process.execPath}" "${LSTREAM_BIN}" generations file://${replica} > /dev/full`);
    expect(full.status).toBe(1);
    expect(full.stderr).toBe('lstream: cannot write to standard output: ENOSPC: no space left on device, write\n');
    // Diagnostics that cannot be written change nothing: the table is still printed.
    const noted = run(`"${process.execPath}" "${LSTREAM_BIN}" generations file://${replica}-typo 2>/dev/full`);
    expect(noted.status).toBe(0);
    expect(noted.stdout).toMatch(/^name\s+generation/);
  });

  it('replicates on the lz4-napi fallback, warning that it does, into a replica liblz4 restores row for row', async () => {
    const { db, configPath } = config('napi');
    write(db, ['--rows', '50']);
    const rep = startLstream(['replicate', '-config', configPath], { LSTREAM_LZ4: 'lz4-napi' });
    await rep.waitFor(/msg="replica synced"/);
    expect(rep.lines.some((l) => l.includes('LZ4 runs on lz4-napi') && l.includes('LSTREAM_LZ4=lz4-napi'))).toBe(true);
    const writer = startWriter(db, ['--rows', '1500', '--batch', '10', '--size', '400', '--interval-ms', '2']);
    expect(await writer.exited).toBe(0);
    expect(await rep.stop('SIGTERM')).toBe(0);
    // Restored by the default backend (liblz4 where its binding is built), and by lz4-napi.
    for (const env of [{}, { LSTREAM_LZ4: 'lz4-napi' }]) {
      const out = join(dir, `napi-restored-${Object.keys(env).length}.db`);
      const r = lstream(['restore', '-config', configPath, '-o', out, '-integrity-check', db], { env });
      expect(r.code).toBe(0);
      const restored = dump(out);
      expect(restored.integrity).toBe('ok');
      expect(restored.rows.length).toBe(1550);
      expect(restored.rows).toEqual(dump(db).rows);
    }
  });

  it('restores to every WAL index exactly as Litestream would, and by timestamp to the last segment at or before it', async () => {
    const { db, replica, configPath } = config('indexes');
    write(db, ['--rows', '10']);
    const rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replica synced"/);
    // Small commits spread out so segments get distinct timestamps and checkpoints make several indexes.
    const writer = startWriter(db, ['--rows', '1200', '--batch', '20', '--size', '600', '--interval-ms', '15']);
    expect(await writer.exited).toBe(0);
    expect(await rep.stop()).toBe(0);

    const [gen] = generationsOf(replica);
    const segs = JSON.parse(lstream(['wal', '-json', `file://${replica}`]).stdout) as {
      generation: string;
      index: number;
      offset: number;
      created: string;
    }[];
    const indexes = [...new Set(segs.map((s) => s.index))];
    expect(indexes.length).toBeGreaterThanOrEqual(4);
    let previous = -1;
    for (const index of indexes) {
      const ours = join(dir, `idx-${index}.db`);
      const theirs = join(dir, `idx-${index}-litestream.db`);
      const r = lstream(['restore', '-o', ours, '-generation', gen!, '-index', index.toString(16), `file://${replica}`]);
      expect(r.code, r.stderr).toBe(0);
      litestreamRestore(replica, gen!, index, theirs);
      const a = dump(ours);
      expect(a.integrity).toBe('ok');
      expect(a.rows).toEqual(dump(theirs).rows);
      expect(a.rows.length).toBeGreaterThanOrEqual(previous);
      previous = a.rows.length;
    }
    expect(previous).toBe(1210);

    // Timestamp: pick a segment in the middle; the restore must include it and nothing after it.
    const mid = segs[Math.floor(segs.length / 2)]!;
    const next = segs[segs.indexOf(mid) + 1]!;
    expect(new Date(next.created).getTime()).toBeGreaterThan(new Date(mid.created).getTime());
    const out = join(dir, 'ts.db');
    const r = lstream(['restore', '-o', out, '-timestamp', mid.created, `file://${replica}`]);
    expect(r.code, r.stderr).toBe(0);
    const theirs = join(dir, 'ts-litestream.db');
    const hex = (n: number) => n.toString(16).padStart(8, '0');
    litestreamRestore(replica, gen!, mid.index, theirs, `${hex(mid.index)}_${hex(mid.offset)}.wal.lz4`);
    expect(dump(out).rows).toEqual(dump(theirs).rows);

    // The time as the text listing prints it (whole seconds) covers that second: the segment listed
    // at that time is in, and so is any other created within the same second.
    const second = Math.floor(new Date(mid.created).getTime() / 1000);
    const lastInSecond = segs.filter((s) => Math.floor(new Date(s.created).getTime() / 1000) === second).at(-1)!;
    const whole = join(dir, 'ts-whole.db');
    const w = lstream(['restore', '-o', whole, '-timestamp', mid.created.replace(/\.\d+Z$/, 'Z'), `file://${replica}`]);
    expect(w.code, w.stderr).toBe(0);
    const theirsWhole = join(dir, 'ts-whole-litestream.db');
    litestreamRestore(replica, gen!, lastInSecond.index, theirsWhole, `${hex(lastInSecond.index)}_${hex(lastInSecond.offset)}.wal.lz4`);
    expect(dump(whole).rows).toEqual(dump(theirsWhole).rows);
  });

  it('continues the generation across a restart, and starts a new one after an external TRUNCATE checkpoint', async () => {
    const { db, replica, configPath } = config('restart');
    write(db, ['--rows', '100']);
    let rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replica synced"/);
    expect(await rep.stop()).toBe(0);
    const snapsBefore = lstream(['snapshots', '-json', `file://${replica}`]).stdout;

    // Restart on an unchanged database: same generation, no new snapshot.
    rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replicating database"/);
    await sleep(300);
    expect(await rep.stop()).toBe(0);
    expect(generationsOf(replica)).toHaveLength(1);
    expect(lstream(['snapshots', '-json', `file://${replica}`]).stdout).toBe(snapsBefore);
    expect(rep.lines.some((l) => l.includes('new generation'))).toBe(false);

    // While the writer keeps its connection open across a restart, the WAL survives: same generation.
    const writer = startWriter(db, ['--rows', '0', '--batch', '1', '--interval-ms', '20', '--autocheckpoint', '0']);
    rep = startLstream(['replicate', '-config', configPath]);
    await writer.waitFor(/committed/);
    await sleep(300);
    expect(await rep.stop()).toBe(0);
    await sleep(200);
    rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replica synced"/);
    await sleep(300);
    expect(await writer.stop()).toBe(0);
    expect(await rep.stop()).toBe(0);
    expect(generationsOf(replica)).toHaveLength(1);

    // An external TRUNCATE checkpoint while lstream is down breaks continuity: a new generation.
    write(db, ['--rows', '30', '--autocheckpoint', '0']);
    expect(spawnSync('sqlite3', [db, 'PRAGMA wal_checkpoint(TRUNCATE);']).status).toBe(0);
    write(db, ['--rows', '30']);
    rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="new generation".*reason=/);
    await rep.waitFor(/msg="replica synced"/);
    expect(await rep.stop()).toBe(0);
    expect(generationsOf(replica)).toHaveLength(2);
    const out = join(dir, 'restart-restored.db');
    expect(lstream(['restore', '-o', out, `file://${replica}`]).code).toBe(0);
    expect(dump(out).rows).toEqual(dump(db).rows);
  });

  it('refuses a second lstream on the same database, naming the holder', async () => {
    const { db, configPath } = config('lock');
    write(db, ['--rows', '10']);
    const rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replicating database"/);
    const other = join(dir, 'lock-other');
    const second = lstream(['replicate', db, `file://${other}`]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(`process ${rep.child.pid}`);
    expect(second.stderr).toContain('ELOCKED');
    expect(await rep.stop()).toBe(0);
  });

  it('says which replica directory it cannot use, and where it is configured', () => {
    const db = join(dir, 'baddir.db');
    write(db, ['--rows', '1']);
    writeFileSync(join(dir, 'a-file'), 'x');
    const configPath = join(dir, 'baddir.yml');
    writeFileSync(configPath, `dbs:\n  - path: ${db}\n    replicas:\n      - url: file://${join(dir, 'a-file', 'replica')}\n`);
    const r = lstream(['replicate', '-config', configPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`cannot use the replica directory ${join(dir, 'a-file', 'replica')}`);
    expect(r.stderr).toContain("line 4:");
    expect(r.stderr).toContain('ECONFIG');
  });

  it('runs and supervises -exec, stopping with a final sync when the child exits', async () => {
    const { db, replica, configPath } = config('exec');
    write(db, ['--rows', '1']);
    const rep = startLstream(['replicate', '-config', configPath, '-exec', `"${process.execPath}" ${join(import.meta.dirname, 'writer.mjs')} ${db} --rows 500 --batch 5`]);
    expect(await rep.exited).toBe(0);
    const out = join(dir, 'exec-restored.db');
    expect(lstream(['restore', '-o', out, `file://${replica}`]).code).toBe(0);
    expect(dump(out).rows).toHaveLength(501);
    // The app's exit code is lstream's, after the final sync.
    const failing = startLstream(['replicate', '-config', configPath, '-exec', `sh -c "exit 7"`]);
    expect(await failing.exited).toBe(7);
  });
});

describe('lstream restore', () => {
  it('fails cleanly on a damaged replica, naming the missing object and leaving nothing at the output path', async () => {
    const { db, replica, configPath } = config('damaged');
    const { walDir, segs } = await replicateSomeCommits(db, replica, configPath);
    // A segment in the middle of an index (its successor continues the same index).
    const i = segs.findIndex((s, k) => k > 0 && segs[k + 1]?.slice(0, 8) === s.slice(0, 8) && !s.endsWith('_00000000.wal.lz4'));
    expect(i).toBeGreaterThan(0);
    const out = join(dir, 'damaged-restored.db');

    // Flipped bytes: the LZ4 content checksum catches them.
    const victim = join(walDir, segs[i]!);
    const original = readFileSync(victim);
    const damaged = Buffer.from(original);
    damaged[Math.floor(damaged.length / 2)]! ^= 0xff;
    writeFileSync(victim, damaged);
    let r = lstream(['restore', '-o', out, `file://${replica}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/ECORRUPT|ECHECKSUM|ELZ4/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.tmp`)).toBe(false);

    // A missing segment: the gap is named.
    rmSync(victim);
    r = lstream(['restore', '-o', out, `file://${replica}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('EMISSING');
    expect(r.stderr).toContain(`offset ${parseInt(segs[i]!.slice(9, 17), 16)}`);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.tmp`)).toBe(false);
  });

  it('refuses to restore an older generation in place of the newest one when that has no snapshot yet', async () => {
    const { db, replica, configPath } = config('nosnap');
    write(db, ['--rows', '40']);
    const rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="replica synced"/);
    expect(await rep.stop()).toBe(0);
    const [old] = generationsOf(replica);
    // A newer generation whose first snapshot has not arrived: its segments only, written now.
    const newer = 'ffffffffffffffff';
    mkdirSync(join(replica, 'generations', newer, 'wal'), { recursive: true });
    for (const s of readdirSync(join(replica, 'generations', old!, 'wal'))) {
      copyFileSync(join(replica, 'generations', old!, 'wal', s), join(replica, 'generations', newer, 'wal', s));
    }
    const out = join(dir, 'nosnap-restored.db');
    const r = lstream(['restore', '-o', out, `file://${replica}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ENOSNAPSHOT');
    expect(r.stderr).toContain(`generation ${newer} (the generation updated last`);
    // The replica does hold backups: -if-replica-exists does not turn this into a quiet success.
    expect(lstream(['restore', '-if-replica-exists', '-o', out, `file://${replica}`]).code).toBe(1);
    expect(r.stderr).toContain('-generation');
    expect(existsSync(out)).toBe(false);
    // The older generation is still there for whoever asks for it.
    expect(lstream(['restore', '-generation', old!, '-o', out, `file://${replica}`]).code).toBe(0);
    expect(dump(out).rows).toEqual(dump(db).rows);
  });

  it('in config mode, fails on a replica it cannot restore from instead of quietly using another', async () => {
    const second = join(dir, 'two-second-replica');
    const { db, replica, configPath } = config('two', '', `        name: first\n      - url: file://${second}\n        name: second\n        sync-interval: 0s\n`);
    const { walDir, segs } = await replicateSomeCommits(db, replica, configPath);
    const out = join(dir, 'two-restored.db');
    // A hole in the first replica's chain: found while planning (a whole WAL index is missing),
    // or while restoring (a segment inside an index is).
    const indexes = [...new Set(segs.map((s) => s.slice(0, 8)))];
    expect(indexes.length).toBeGreaterThan(2);
    const middle = indexes[1]!;
    const inside = segs.findIndex((s, k) => k > 0 && segs[k + 1]?.slice(0, 8) === s.slice(0, 8) && !s.endsWith('_00000000.wal.lz4'));
    expect(inside).toBeGreaterThan(0);
    const insideName = segs[inside]!;
    const kept = new Map(segs.map((s) => [s, readFileSync(join(walDir, s))]));
    rmSync(join(walDir, insideName));
    for (const s of segs.filter((x) => x.startsWith(middle) && x !== insideName)) rmSync(join(walDir, s));
    for (let i = 0; i < 2; i++) {
      const r = lstream(['restore', '-config', configPath, '-o', out, db]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('replica first:');
      expect(r.stderr).toContain('EMISSING');
      expect(r.stderr).toContain('-replica NAME');
      // The gap inside an index names the missing object.
      if (i === 1) expect(r.stderr).toContain(`/wal/${insideName} is missing from the replica`);
      expect(existsSync(out)).toBe(false);
      // Planning finds the missing index first; with it back, restoring finds the missing segment.
      if (i === 0) for (const s of segs.filter((x) => x.startsWith(middle) && x !== insideName)) writeFileSync(join(walDir, s), kept.get(s)!);
    }
    // The operator chooses the intact one.
    expect(lstream(['restore', '-config', configPath, '-replica', 'second', '-o', out, db]).code).toBe(0);
    expect(dump(out).rows).toEqual(dump(db).rows);
  });

  it('refuses a snapshot cut short inside a valid LZ4 frame, naming it and leaving nothing behind', async () => {
    const { db, replica, configPath } = config('short');
    write(db, ['--rows', '300', '--size', '1000']);
    const rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/msg="snapshot written"/);
    expect(await rep.stop()).toBe(0);
    const [gen] = generationsOf(replica);
    const snapDir = join(replica, 'generations', gen!, 'snapshots');
    const snap = join(snapDir, readdirSync(snapDir).sort().at(-1)!);
    // Snapshot only: no segment from the snapshot's index on.
    const walDir = join(replica, 'generations', gen!, 'wal');
    for (const s of readdirSync(walDir)) if (s.slice(0, 8) >= basename(snap).slice(0, 8)) rmSync(join(walDir, s));
    const out = join(dir, 'short-restored.db');
    const whole = lstream(['restore', '-integrity-check', '-o', out, `file://${replica}`]);
    expect(whole.code).toBe(0);
    rmSync(out);

    const raw = spawnSync('lz4', ['-d', '-c', snap], { maxBuffer: 1 << 30 }).stdout;
    expect(raw.length).toBeGreaterThan(200_000);
    // Cut inside a page, and at a page boundary.
    for (const [cut, why] of [
      [200_000, 'but it holds 196608 bytes'],
      [40_960, 'but it holds 40960 bytes'],
    ] as const) {
      writeFileSync(join(dir, 'short.raw'), raw.subarray(0, cut));
      expect(spawnSync('lz4', ['-q', '-f', '-1', join(dir, 'short.raw'), snap]).status).toBe(0);
      const r = lstream(['restore', '-o', out, `file://${replica}`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('the restored database is not whole: its header counts');
      expect(r.stderr).toContain(why);
      expect(r.stderr).toContain('ECORRUPT');
      expect(existsSync(out)).toBe(false);
      expect(existsSync(`${out}.tmp`)).toBe(false);
    }
  });

  it('honours -if-db-not-exists, -if-replica-exists and -dry-run', () => {
    const empty = join(dir, 'empty-replica');
    const out = join(dir, 'never.db');
    const none = lstream(['restore', '-o', out, `file://${empty}`]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('ENOBACKUP');
    // It says where it looked, and a replica directory that is not there (a mistyped path) as such.
    expect(none.stderr).toContain(`(looked in ${empty}, which does not exist)`);
    // Skipping says so, and where it looked: a mistyped path is not mistaken for a new deployment.
    const skipped = lstream(['restore', '-if-replica-exists', '-o', out, `file://${empty}`]);
    expect(skipped.code).toBe(0);
    expect(skipped.stderr).toContain(`(looked in ${empty}, which does not exist); skipping restore`);
    // So do the listings, whose empty table alone would not tell a mistyped path from a new replica.
    for (const cmd of ['generations', 'snapshots', 'wal']) {
      const listed = lstream([cmd, `file://${empty}`]);
      expect(listed.code).toBe(0);
      expect(listed.stderr).toBe(`lstream: replica file: ${empty} does not exist (nothing replicated there yet, or a mistyped path)\n`);
    }
    mkdirSync(empty);
    expect(lstream(['generations', `file://${empty}`]).stderr).toBe('');
    // A file where the replica directory should be (the database's own path, say) is named as such.
    const notDir = join(dir, 'not-a-dir');
    writeFileSync(notDir, 'x');
    expect(lstream(['wal', `file://${notDir}`]).stderr).toBe(`lstream: replica file: ${notDir} is not a directory\n`);
    expect(lstream(['restore', '-o', out, `file://${notDir}`]).stderr).toContain(`(looked in ${notDir}, which is not a directory)`);
    const emptyDir = lstream(['restore', '-o', out, `file://${empty}`]);
    expect(emptyDir.stderr).toContain('ENOBACKUP');
    expect(emptyDir.stderr).toContain(`(looked in ${empty})`);
    expect(lstream(['restore', '-if-replica-exists', '-o', out, `file://${empty}`]).code).toBe(0);
    expect(existsSync(out)).toBe(false);

    const { db, replica } = config('basic');
    expect(lstream(['restore', '-o', db, `file://${replica}`]).code).toBe(1);
    expect(lstream(['restore', '-if-db-not-exists', '-o', db, `file://${replica}`]).code).toBe(0);
    // A time before every backup: no backup then, which -if-replica-exists accepts (as Litestream).
    const early = ['-o', out, '-timestamp', '2001-01-01T00:00:00Z', `file://${replica}`];
    const tooEarly = lstream(['restore', ...early]);
    expect(tooEarly.code).toBe(1);
    expect(tooEarly.stderr).toMatch(/no backup at or before 2001-01-01T00:00:00(\.\d+)?Z: the earliest is from \d{4}-/);
    const skippedEarly = lstream(['restore', '-if-replica-exists', ...early]);
    expect(skippedEarly.code).toBe(0);
    expect(skippedEarly.stderr).toContain('skipping restore');
    expect(existsSync(out)).toBe(false);

    // A stale WAL next to the output would be replayed onto the restored file by SQLite: refused.
    writeFileSync(`${out}-wal`, 'stale');
    const stale = lstream(['restore', '-o', out, `file://${replica}`]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain(`${out}-wal exists`);
    expect(existsSync(out)).toBe(false);
    rmSync(`${out}-wal`);
    // An output that is a directory, or empty, is named as such.
    const asDir = lstream(['restore', '-o', dir, `file://${replica}`]);
    expect(asDir.code).toBe(1);
    expect(asDir.stderr).toContain(`${dir} is a directory`);
    expect(lstream(['restore', '-o', '', `file://${replica}`]).stderr).toContain('-o needs a path');
    // A failed restore removes the directories it made for its output.
    const broken = join(dir, 'basic-broken-replica');
    cpSync(replica, broken, { recursive: true });
    const [gen] = generationsOf(broken);
    const snapDir = join(broken, 'generations', gen!, 'snapshots');
    const snap = join(snapDir, readdirSync(snapDir).sort().at(-1)!);
    const bytes = readFileSync(snap);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    writeFileSync(snap, bytes);
    const nested = join(dir, 'made', 'for', 'it', 'x.db');
    const failed = lstream(['restore', '-o', nested, `file://${broken}`]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/ECHECKSUM|ECORRUPT|ELZ4/);
    expect(existsSync(join(dir, 'made'))).toBe(false);
    // What a killed restore leaves is named, all of it, with the command that removes it.
    writeFileSync(`${out}.tmp`, 'partial');
    writeFileSync(`${out}.tmp-wal`, 'partial');
    const left = lstream(['restore', '-o', out, `file://${replica}`]);
    expect(left.code).toBe(1);
    expect(left.stderr).toContain(`rm '${out}.tmp' '${out}.tmp-wal'`);
    rmSync(`${out}.tmp`);
    rmSync(`${out}.tmp-wal`);

    const dry = lstream(['restore', '-dry-run', '-json', '-o', out, `file://${replica}`]);
    expect(dry.code).toBe(0);
    const plan = JSON.parse(dry.stdout) as { segments: number; bytes: number; generation: string };
    expect(plan.segments).toBeGreaterThan(0);
    expect(plan.bytes).toBeGreaterThan(0);
    expect(existsSync(out)).toBe(false);
    // A dry run answers as the real run would for an existing output.
    expect(lstream(['restore', '-dry-run', '-o', db, `file://${replica}`]).code).toBe(1);
    const skip = lstream(['restore', '-dry-run', '-if-db-not-exists', '-o', db, `file://${replica}`]);
    expect(skip.code).toBe(0);
    expect(skip.stdout).not.toContain('would restore');
  });

  it('accepts a database without replicas, as Litestream does: monitored and checkpointed, and says so', async () => {
    const db = join(dir, 'norep.db');
    const configPath = join(dir, 'norep.yml');
    writeFileSync(configPath, `dbs:\n  - path: ${db}\n`);
    write(db, ['--rows', '5']);
    const rep = startLstream(['replicate', '-config', configPath]);
    await rep.waitFor(/level=WARN msg="database has no replicas: it is monitored and checkpointed, but not replicated"/);
    write(db, ['--rows', '50']);
    await sleep(300);
    expect(await rep.stop('SIGTERM')).toBe(0);
    expect(dump(db).rows.length).toBe(55);
    const r = lstream(['restore', '-config', configPath, '-o', join(dir, 'norep-restored.db'), db]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('ENOBACKUP');
  });

  it('rejects bad flags with a usage error', () => {
    const r = lstream(['restore', '-index', 'zz', '-o', '/tmp/x.db', 'file:///nonexistent']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('-index takes a WAL index in hex');
    expect(lstream(['restore', '-bogus', 'x']).stderr).toContain('unknown flag -bogus');
    for (const bad of ['0', '1e2', '0x10', ' 3', '-2']) {
      expect(lstream(['restore', '-parallelism', bad, '-o', '/tmp/x.db', 'file:///nonexistent']).stderr).toContain('-parallelism takes a whole number');
    }
  });
});
