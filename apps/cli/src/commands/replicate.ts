import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { resolve } from 'node:path';
import { replicaConfigFromUrl, startDatabases, isReplicaUrl, type DbConfig, type LoggingConfig } from '@ls/config';
import { CONFIG_FLAGS, parseCommandArgs } from '../argv.js';
import { loadConfig } from '../context.js';
import { UsageError } from '../errors.js';
import { createLogger } from '../log.js';
import { splitCommand } from '../shell-words.js';

export const usage = `Replicates databases continuously until stopped (SIGINT/SIGTERM makes a final sync).

Usage:
  lstream replicate [flags]                        every database in the config file
  lstream replicate [flags] DB_PATH URL [URL...]   one database to the given replica URLs

Flags:
  -config PATH      config file (default $LSTREAM_CONFIG, $LITESTREAM_CONFIG, /etc/lstream.yml, /etc/litestream.yml)
  -no-expand-env    do not expand $VAR in the config file
  -exec CMD         run CMD as a child process; stop replicating when it exits, forward signals to it
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
  const logger = createLogger(logging);
  if (addr !== undefined) {
    logger.warn('the config sets addr, but this version of lstream does not serve /metrics yet; it is ignored', { addr });
  }
  // Signals are handled from the start: one that arrives while databases open stops right after.
  let signals = 0;
  let onStop: (sig: NodeJS.Signals) => void = () => undefined;
  const stopped = new Promise<NodeJS.Signals>((res) => (onStop = res));
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn('second signal, exiting without a final sync', { signal: sig });
      process.exit(130);
    }
    logger.info('signal received, stopping', { signal: sig });
    onStop(sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const running = await startDatabases(dbs, { logger });

  let child: ChildProcess | undefined;
  let childExit: Promise<number> | undefined;
  if (exec !== undefined && exec.trim() !== '') {
    const [cmd, ...args] = splitCommand(exec);
    child = spawn(cmd!, args, { stdio: 'inherit' });
    childExit = new Promise((res) => {
      child!.on('exit', (code, signal) => res(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1)));
      child!.on('error', (err) => {
        logger.error('cannot run -exec command', { exec, error: String(err) });
        res(1);
      });
    });
  }

  void stopped.then((sig) => {
    if (child && child.exitCode === null) child.kill(sig);
  });

  // Timers and watchers in the engine do not hold the process open; this does, until a stop.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const why = await Promise.race([stopped, childExit ?? new Promise<never>(() => undefined)]);
  let code = 0;
  if (typeof why === 'number') {
    logger.info('subprocess exited, stopping', { code: why });
    code = why === 0 ? 0 : 1;
  } else if (childExit) {
    await childExit;
  }
  try {
    await running.close();
    logger.info('stopped after a final sync');
  } catch (err) {
    logger.error('final sync failed', { error: String(err) });
    return 1;
  } finally {
    clearInterval(keepAlive);
  }
  return code;
}
