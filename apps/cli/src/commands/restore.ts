import { existsSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import cliProgress from 'cli-progress';
import {
  LstreamError,
  NoBackupError,
  OutputExistsError,
  TargetNotFoundError,
  planRestore,
  restore,
  type ReplicaClient,
  type RestorePlan,
  type RestoreTarget,
} from '@ls/core';
import { STOP_SIGNALS, createLogger, isReplicaUrl } from '@ls/config';
import { CONFIG_FLAGS, parseCommandArgs } from '../argv.js';
import { knownSecrets, missingDirectory, redactOutput, resolveReplicas, type ResolvedReplica } from '../context.js';
import { UsageError } from '../errors.js';
import { formatTime } from '../output.js';

export const usage = `Restores a database from a replica to its latest state or to a point in time.

Usage:
  lstream restore [flags] DB_PATH
  lstream restore [flags] -o OUTPUT REPLICA_URL

Flags:
  -config PATH          config file
  -no-expand-env        do not expand $VAR in the config file
  -o PATH               output path (default: the database path, config mode only)
  -replica NAME         restore from this replica (default: the one with the latest data)
  -generation NAME      restore from this generation (default: the latest)
  -index HEX            restore through the end of this WAL index, in hex (needs -generation);
                        \`lstream wal\` prints indexes in decimal: its 31 is -index 1f
  -timestamp TIME       restore to the last segment created at or before this RFC 3339 time
                        (whole seconds, as listings print them, cover the whole second)
  -parallelism N        objects downloaded at once (default 8)
  -if-db-not-exists     succeed without restoring when the output already exists
  -if-replica-exists    succeed without restoring when the replica holds no backup (none at or
                        before -timestamp, when one is given), as Litestream does
  -integrity-check      run PRAGMA integrity_check before putting the result in place
  -dry-run              print what would be downloaded and the position reached, and stop
  -json                 print the result (or the plan) as JSON
`;

const OPTIONS = {
  ...CONFIG_FLAGS,
  o: { type: 'string' },
  replica: { type: 'string' },
  generation: { type: 'string' },
  index: { type: 'string' },
  timestamp: { type: 'string' },
  parallelism: { type: 'string' },
  'if-db-not-exists': { type: 'boolean' },
  'if-replica-exists': { type: 'boolean' },
  'integrity-check': { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  json: { type: 'boolean' },
} as const;

function parseTarget(values: { generation?: string; index?: string; timestamp?: string }): RestoreTarget {
  const target: RestoreTarget = {};
  if (values.generation !== undefined) target.generation = values.generation;
  if (values.index !== undefined) {
    if (!/^[0-9a-fA-F]{1,8}$/.test(values.index) || parseInt(values.index, 16) > 0x7fffffff) {
      throw new UsageError(
        `restore: -index takes a WAL index in hex, as Litestream's does (\`lstream wal\` and \`lstream snapshots\` print indexes in decimal: index 31 there is -index 1f), got '${values.index}'`,
        'restore',
      );
    }
    target.index = parseInt(values.index, 16);
  }
  if (values.timestamp !== undefined) {
    const ts = parseRfc3339(values.timestamp);
    if (!ts) {
      throw new UsageError(`restore: -timestamp takes an RFC 3339 time such as 2026-11-26T19:38:29Z, got '${values.timestamp}'`, 'restore');
    }
    // Listings print whole seconds: a time without a fraction means that whole second, so restoring
    // to a segment's printed time includes that segment (Litestream compares to the nanosecond).
    target.timestamp = /\.\d/.test(values.timestamp) ? ts : new Date(ts.getTime() + 999);
  }
  return target;
}

/**
 * An RFC 3339 time (`2026-11-26T19:38:29Z`, `…29.5+02:00`), or undefined when it is not one. Every field
 * is checked, as Go's parser does: `Date` would turn February 30 into March 2, and 24:00 into the next day.
 */
export function parseRfc3339(text: string): Date | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-](\d{2}):(\d{2}))$/.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) return undefined;
  if (m[9] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) return undefined;
  const date = new Date(text.toUpperCase());
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function planSummary(name: string, plan: RestorePlan) {
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  const last = plan.segments.at(-1);
  return {
    replica: name,
    generation: plan.generation,
    snapshot: { index: plan.snapshot.index, size: plan.snapshot.size, created: formatTime(plan.snapshot.createdAt) },
    segments: plan.segments.length,
    indexes: plan.segments.length ? `${hex(plan.segments[0]!.index)}..${hex(plan.index)}` : hex(plan.snapshot.index),
    bytes: plan.bytes,
    position: last ? `${plan.generation}/${hex(last.index)}:${last.offset}+` : `${plan.generation}/${hex(plan.snapshot.index)}:0`,
  };
}

/** `err` as an error of replica `name` (its name in front, `advice` after), keeping its code. */
function inReplica(name: string, err: unknown, advice: string): LstreamError {
  const code = LstreamError.isInstance(err) ? err.code : 'EREPLICA';
  return new LstreamError(code, `replica ${name}: ${(err as Error).message}${advice}`, { cause: err });
}

/**
 * Picks the replica to restore from: the named one, the only one, or the one whose chosen generation
 * was updated last. A replica that holds no backup, or not the target, leaves the choice to the
 * others; one that cannot be read or holds a broken chain fails the restore, naming it: the others
 * may hold older data, and a restore that quietly goes back in time is worse than one that stops.
 */
async function choose(replicas: ResolvedReplica[], target: RestoreTarget): Promise<{ r: ResolvedReplica; plan: RestorePlan } | undefined> {
  let best: { r: ResolvedReplica; plan: RestorePlan; updated: number } | undefined;
  const errors: unknown[] = [];
  for (const r of replicas) {
    try {
      const plan = await planRestore(r.client as ReplicaClient, target);
      let updated = plan.snapshot.createdAt.getTime();
      for (const s of plan.segments) updated = Math.max(updated, s.createdAt.getTime());
      if (!best || updated > best.updated) best = { r, plan, updated };
    } catch (err) {
      if (replicas.length > 1 && !NoBackupError.isInstance(err) && !TargetNotFoundError.isInstance(err)) {
        const names = replicas.map((x) => x.config.name).join(', ');
        throw inReplica(r.config.name, err, `. Not restoring from another replica (${names}), which may hold older data: fix this one, or choose one with -replica NAME`);
      }
      errors.push(err);
    }
  }
  if (best) return best;
  // Every replica failed: report the most specific reason (anything but "no backup" first).
  const specific = errors.find((e) => !(e instanceof NoBackupError));
  if (specific !== undefined) throw specific;
  if (errors.length === 0) throw new NoBackupError('no replicas to restore from');
  // Nothing anywhere: say where it looked, as a mistyped path or bucket is the usual cause.
  throw new NoBackupError(`${(errors[0] as Error).message} (looked in ${replicas.map((r) => location(r.config)).join('; ')})`);
}

/** Where a replica keeps its backups, for messages; a file replica's missing directory is named as such. */
function location(c: ResolvedReplica['config']): string {
  if (c.type === 'file' && c.path !== undefined) {
    const problem = missingDirectory(c.path);
    return problem === undefined ? c.path : `${c.path}, which ${problem}`;
  }
  if (c.url !== undefined) return c.url;
  return `${c.type === 'gcs' ? 'gs' : c.type}://${c.bucket ?? ''}/${c.path ?? ''}`;
}

/** Runs `lstream restore`. */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('restore', argv, OPTIONS);
  if (positionals.length !== 1) throw new UsageError('restore: expected one database path or replica URL', 'restore');
  const arg = positionals[0]!;
  const target = parseTarget(values);
  let parallelism: number | undefined;
  if (values.parallelism !== undefined) {
    // Digits only, as Go's flag package reads an int: no 1e2, 0x10 or spaces.
    parallelism = /^[0-9]{1,4}$/.test(values.parallelism) ? Number(values.parallelism) : NaN;
    if (!(parallelism >= 1)) {
      throw new UsageError(`restore: -parallelism takes a whole number from 1 to 9999, got '${values.parallelism}'`, 'restore');
    }
  }
  const url = isReplicaUrl(arg);
  if (url && values.o === undefined) throw new UsageError('restore: a replica URL needs an output path (-o PATH)', 'restore');
  if (values.o !== undefined && values.o.trim() === '') throw new UsageError('restore: -o needs a path, got an empty one', 'restore');
  const replicas = await resolveReplicas(arg, values);
  const output = values.o ?? replicas[0]?.db?.path ?? arg;
  const logger = createLogger({ stderr: true, level: 'warn', secrets: knownSecrets() });

  // A dry run answers as the real run would: it skips, or refuses, an existing output too.
  if (existsSync(output)) {
    if (statSync(output).isDirectory()) throw OutputExistsError.directory(output);
    if (values['if-db-not-exists']) {
      process.stderr.write(`database already exists at ${output}, skipping restore\n`);
      return 0;
    }
    throw new OutputExistsError(output);
  }

  let chosen: Awaited<ReturnType<typeof choose>>;
  try {
    chosen = await choose(replicas, target);
  } catch (err) {
    if (err instanceof NoBackupError && values['if-replica-exists']) {
      // The message says where it looked: a mistyped path must not pass for a new deployment.
      process.stderr.write(redactOutput(`lstream: ${err.message}; skipping restore\n`));
      return 0;
    }
    throw err;
  }
  if (!chosen) throw new NoBackupError('no backups found in any replica');
  const summary = planSummary(chosen.r.config.name, chosen.plan);

  if (values['dry-run']) {
    if (values.json) process.stdout.write(JSON.stringify({ output, ...summary }, null, 2) + '\n');
    else {
      process.stdout.write(
        `would restore ${output} from replica ${summary.replica}, generation ${summary.generation}\n` +
          `  snapshot index ${chosen.plan.snapshot.index.toString(16).padStart(8, '0')} (${summary.snapshot.size} bytes, created ${summary.snapshot.created})\n` +
          `  ${summary.segments} WAL segments, indexes ${summary.indexes}\n` +
          `  ${summary.bytes} bytes to download\n` +
          `  reaching ${summary.position}\n`,
      );
    }
    return 0;
  }

  const bar =
    process.stderr.isTTY && !values.json
      ? new cliProgress.SingleBar(
          { format: 'restoring [{bar}] {percentage}% | {value}/{total} bytes | {segs} segments', stream: process.stderr, hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(chosen.plan.bytes, 0, { segs: `0/${chosen.plan.segments.length}` });
  const started = performance.now();
  // SIGINT, SIGTERM and SIGHUP (a closed terminal) stop the restore, which then removes what it wrote
  // (a killed one would leave <out>.tmp and make the next restore refuse to start); a second signal
  // exits at once.
  const stop = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stoppedBy) process.exit(130);
    stoppedBy = sig;
    process.stderr.write(`\nlstream: ${sig}: stopping the restore and removing ${output}.tmp\n`);
    stop.abort();
  };
  for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
  let result;
  try {
    result = await restore(chosen.r.client, {
      ...target,
      generation: chosen.plan.generation,
      outputPath: output,
      parallelism,
      integrityCheck: values['integrity-check'] ?? false,
      logger,
      onProgress: (p) => bar?.update(p.downloadedBytes, { segs: `${p.appliedSegments}/${p.totalSegments}` }),
      signal: stop.signal,
    });
  } catch (err) {
    // Stopped by a signal: the conventional 128 + signal number, once the restore has cleaned up.
    // It exits now: a storage SDK may still be retrying an aborted download in the background.
    if (stoppedBy) process.exit(128 + (osConstants.signals[stoppedBy] ?? 0));
    // With several replicas, say which one failed (another may be intact: -replica chooses it).
    if (replicas.length > 1 && LstreamError.isInstance(err)) {
      throw inReplica(chosen.r.config.name, err, '; another replica may be intact: choose it with -replica NAME');
    }
    throw err;
  } finally {
    bar?.stop();
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
  }
  const seconds = (performance.now() - started) / 1000;
  if (values.json) {
    process.stdout.write(JSON.stringify({ ...summary, output, position: result.pos.toString(), downloadedBytes: summary.bytes, bytes: result.dbBytes, seconds }, null, 2) + '\n');
  } else {
    process.stdout.write(`restored ${output} to ${result.pos.toString()} (${result.dbBytes} bytes) from replica ${summary.replica} in ${seconds.toFixed(2)}s\n`);
  }
  return 0;
}
