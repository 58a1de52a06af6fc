// lstream storage benchmarks (run by bench.mjs): replication lag and restore throughput through S3
// (s3rver, a real S3 protocol server on loopback, in its own process) next to the file replica's,
// measured in the same run with the same writer and data. Prints JSON.
import { spawn } from 'node:child_process';
import { spawnSync } from 'node:child_process';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MiB = 1024 * 1024;
const RUNS = Number(process.env.LSTREAM_BENCH_RUNS ?? 3);
const LAG_SECONDS = Number(process.env.LSTREAM_BENCH_LAG_SECONDS ?? 12);
const WAL_MIB = Number(process.env.LSTREAM_BENCH_STORAGE_WAL_MIB ?? 100);
const dir = join(process.env.LSTREAM_BENCH_DIR ?? '/tmp/lstream-bench', 'storage');
const workerScript = fileURLToPath(new URL('./bench-engine-worker.mjs', import.meta.url));
const s3rverScript = fileURLToPath(new URL('./bench-s3rver.mjs', import.meta.url));
const log = (s) => process.stderr.write(`${s}\n`);
const r1 = (x) => Math.round(x * 10) / 10;
const r2 = (x) => Math.round(x * 100) / 100;
const best = (xs) => Math.min(...xs);

await rm(dir, { recursive: true, force: true });
await mkdir(join(dir, 's3rver', 'bench'), { recursive: true }); // a bucket is a directory

const server = spawn(process.execPath, [s3rverScript, join(dir, 's3rver')], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((resolve, reject) => {
  server.stdout.setEncoding('utf8').once('data', (d) => resolve(Number(d.trim())));
  server.once('exit', (code) => reject(new Error(`s3rver exited ${code}`)));
});
const env = { ...process.env, LSTREAM_BENCH_S3_ENDPOINT: `http://127.0.0.1:${port}`, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

function worker(...args) {
  const r = spawnSync(process.execPath, [workerScript, ...args.map(String)], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`bench worker ${args.join(' ')} failed (exit ${r.status})`);
  return JSON.parse(r.stdout);
}

const result = { s3Server: 's3rver 3.7.1 (patched) on loopback, own process', runs: RUNS };
try {
  // --- replication lag: the same writer (a commit every 50 ms), file vs S3 -------------------------
  result.lag = {};
  for (const interval of [0, 1000]) {
    for (const kind of ['file', 's3']) {
      log(`lag to ${kind}: sync-interval ${interval} ms, ${LAG_SECONDS} s`);
      const where = kind === 'file' ? join(dir, `lag-${interval}-replica`) : `s3://bench/lag-${interval}`;
      const r = worker('lag', interval, LAG_SECONDS, where);
      result.lag[`${kind}SyncInterval${interval}ms`] = { samples: r.samples, p50Ms: r.p50Ms, p99Ms: r.p99Ms, maxMs: r.maxMs };
    }
  }

  // --- restore: one app's ~WAL_MIB of WAL in ~30 indexes, replicated to both, restored from both ---
  result.restore = {};
  for (const kind of ['file', 's3']) {
    const appDir = join(dir, `app-${kind}`);
    const where = kind === 'file' ? join(appDir, 'replica') : 's3://bench/restore';
    log(`replicating ~${WAL_MIB} MiB of WAL to ${kind}`);
    const rep = worker('replicate-wal', WAL_MIB, appDir, 2000, 'grow', where);
    const out = join(dir, `restored-${kind}.db`);
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      log(`restore from ${kind}, run ${i + 1}/${RUNS}`);
      runs.push(worker('restore', where, out));
    }
    const dbMiB = (await stat(out)).size / MiB;
    const seconds = best(runs.map((r) => r.seconds));
    result.restore[kind] = {
      walMiB: rep.walMiB,
      segments: runs[0].segments,
      dbMiB: r1(dbMiB),
      seconds: r2(seconds),
      dbMiBPerSecond: r1(dbMiB / seconds),
      peakRssMiB: Math.max(...runs.map((r) => r.maxRssMiB)),
    };
  }
  result.restore.s3ToFileTimeRatio = r2(result.restore.s3.seconds / result.restore.file.seconds);
  result.note = 'lag: commit to durable in the replica (ms); restore: MiB of restored database per second (includes fsync)';
} finally {
  server.kill('SIGTERM');
}
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
