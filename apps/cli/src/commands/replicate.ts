import { resolve } from 'node:path';
import {
  collectSecrets,
  createLogger,
  handleStopSignals,
  isReplicaUrl,
  redactText,
  replicaConfigFromUrl,
  splitCommand,
  startDatabases,
  superviseUntilStopped,
  type DbConfig,
  type LoggingConfig,
  type RunningDatabases,
} from '@ls/config';
import { LstreamEmitter } from '@ls/core';
import { CONFIG_FLAGS, parseCommandArgs } from '../argv.js';
import { loadConfig } from '../context.js';
import { UsageError } from '../errors.js';

export const usage = `Replicates databases continuously until stopped (SIGINT, SIGTERM or SIGHUP makes a final sync).

Usage:
  lstream replicate [flags]                        every database in the config file
  lstream replicate [flags] DB_PATH URL [URL...]   one database to the given replica URLs

Flags:
  -config PATH      config file (default $LSTREAM_CONFIG, $LITESTREAM_CONFIG, /etc/lstream.yml, /etc/litestream.yml)
  -no-expand-env    do not expand $VAR in the config file
  -exec CMD         run CMD as a child process; stop replicating when it exits, forward signals to it

When the config file sets addr (such as ":9090" or "127.0.0.1:9090"), Prometheus metrics are served
at /metrics on it while replicating.
`;

const OPTIONS = { ...CONFIG_FLAGS, exec: { type: 'string' } } as const;

/** Runs `lstream replicate`; resolves with the exit code once replication has stopped. */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('replicate', argv, OPTIONS);
  let dbs: DbConfig[];
  let logging: LoggingConfig = { level: 'info', type: 'text', stderr: false };
  let exec = values.exec;
  let addr: string | undefined;
  if (positionals.length > 0) {
    if (values.config !== undefined) throw new UsageError('replicate: cannot use -config with a database path and replica URLs', 'replicate');
    if (positionals.length < 2) throw new UsageError('replicate: must specify at least one replica URL', 'replicate');
    const [path, ...urls] = positionals as [string, ...string[]];
    for (const u of urls) if (!isReplicaUrl(u)) throw new UsageError(`replicate: '${u}' is not a replica URL (file:///dir, s3://bucket/path, gcs://bucket/path)`, 'replicate');
    const replicas = urls.map((u, i) => replicaConfigFromUrl(u, urls.length > 1 ? { name: `${replicaConfigFromUrl(u).type}${i === 0 ? '' : i}` } : {}));
    dbs = [{ path: resolve(path), options: {}, replicas }];
  } else {
    const config = (await loadConfig(values, true))!;
    if (config.dbs.length === 0) throw new UsageError(`replicate: no databases in ${config.file ?? 'the config file'}`, 'replicate');
    dbs = config.dbs;
    logging = config.logging;
    addr = config.addr;
    exec ??= config.exec;
  }
  const secrets = collectSecrets(dbs);
  const logger = createLogger({ ...logging, secrets });
  // Signals are handled from the start: one that arrives while databases open stops right after.
  const stop = handleStopSignals(logger);
  try {
    // Checked before anything opens, so a bad command line costs nothing.
    if (exec !== undefined && exec.trim() !== '') splitCommand(exec);
    const events = new LstreamEmitter();
    let running: RunningDatabases | undefined;
    let metricsServer: { close(): Promise<void> } | undefined;
    let unobserve: () => void = () => {};
    if (addr !== undefined) {
      // Loaded only when asked for: prom-client would slow every start of the CLI otherwise.
      const { LstreamMetrics, serveMetrics } = await import('@ls/metrics');
      const metrics = new LstreamMetrics();
      // Subscribed before the databases open, so their first syncs are counted.
      unobserve = metrics.observe(events, () => running?.dbs ?? []);
      const served = await serveMetrics(metrics, addr);
      metricsServer = served;
      logger.info('serving metrics', { url: `http://${served.host.includes(':') ? `[${served.host}]` : served.host}:${served.port}/metrics` });
    }
    try {
      running = await startDatabases(dbs, { logger, events });
      return await superviseUntilStopped(running, stop, { exec, shownExec: exec && redactText(exec, secrets), logger });
    } finally {
      unobserve();
      await metricsServer?.close();
    }
  } finally {
    stop.dispose();
  }
}
