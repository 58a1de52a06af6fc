import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import {
  collectSecrets,
  createLogger,
  guardStdio,
  handleStopSignals,
  loadConfigFile,
  normalizeArgv,
  redactText,
  resolveConfigPath,
  splitCommand,
  startDatabases,
  superviseUntilStopped,
  type LstreamConfig,
} from '@ls/config';
import { LstreamEmitter, LstreamError } from '@ls/core';
import { LstreamMetrics, parseListenAddress } from '@ls/metrics';
import { authority, DEFAULT_ADDR, isLoopback } from './addr.js';
import { authPolicy, TOKEN_ENV, type AuthPolicy } from './auth.js';
import { createHttpServer } from './http.js';
import { ServerStatus } from './status.js';

const USAGE = `lstream-server replicates every database of an lstream config file and serves
/metrics, /healthz, /readyz, a status API (/api/v1/...) and a dashboard (/) over HTTP.

Usage:
  lstream-server [flags]

Flags:
  -config PATH      config file (default $LSTREAM_CONFIG, $LITESTREAM_CONFIG, /etc/lstream.yml, /etc/litestream.yml)
  -no-expand-env    do not expand $VAR in the config file
  -addr HOST:PORT   listen address (default the config's addr, else ${DEFAULT_ADDR}; ":9090" is every interface)
  -exec CMD         run CMD as a child process; stop when it exits, forward signals to it

On a non-loopback address, /api/* needs "Authorization: Bearer <token>" with the token from
$${TOKEN_ENV} or the config's server.token; without one the API stays off and only /metrics,
/healthz and /readyz answer. SIGINT/SIGTERM/SIGHUP stop with a final sync (the exec child gets 3 s, the whole
shutdown at most 10 s); a second signal kills the child and exits at once.
`;

const OPTIONS = {
  config: { type: 'string' },
  'no-expand-env': { type: 'boolean' },
  addr: { type: 'string' },
  exec: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Runs `lstream-server` with `argv` (without node and script); resolves with the exit code once it stopped. */
export async function main(argv: string[]): Promise<number> {
  // Its output is its log: losing it (a closed terminal, a full disk) must not stop replication.
  guardStdio('until-stopped');
  let values: { config?: string; 'no-expand-env'?: boolean; addr?: string; exec?: string; help?: boolean };
  try {
    values = parseArgs({ args: normalizeArgv(argv, OPTIONS), options: OPTIONS, allowPositionals: false, strict: true }).values;
  } catch (err) {
    process.stderr.write(`lstream-server: ${(err as Error).message.replace(/\. To specify.*$/s, '')}\n\n${USAGE}`);
    return 1;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  // Filled with the config's credentials once it is loaded; an error printed here may quote them.
  const known = { secrets: collectSecrets([]) };
  try {
    return await serve(values, known);
  } catch (err) {
    const code = LstreamError.isInstance(err) ? ` [${(err as LstreamError).code}]` : '';
    process.stderr.write(redactText(`lstream-server: ${(err as Error)?.message ?? String(err)}${code}\n`, known.secrets));
    if (process.env.LSTREAM_DEBUG) process.stderr.write(redactText(`${(err as Error)?.stack ?? ''}\n`, known.secrets));
    return 1;
  }
}

async function loadConfig(flags: { config?: string; 'no-expand-env'?: boolean }): Promise<LstreamConfig> {
  const found = resolveConfigPath(flags.config);
  if (!found) throw new Error('no config file: pass -config PATH, set $LSTREAM_CONFIG, or create /etc/lstream.yml');
  const config = await loadConfigFile(found.path, { expandEnv: !flags['no-expand-env'] });
  if (config.dbs.length === 0) throw new Error(`no databases in ${config.file ?? 'the config file'}: list them under dbs:`);
  return config;
}

async function serve(
  flags: { config?: string; 'no-expand-env'?: boolean; addr?: string; exec?: string },
  known: { secrets: string[] },
): Promise<number> {
  // Everything that can be wrong with the command line or the config fails here, before anything starts.
  const config = await loadConfig(flags);
  const addr = parseListenAddress(flags.addr ?? config.addr ?? DEFAULT_ADDR);
  const exec = flags.exec ?? config.exec;
  if (exec !== undefined && exec.trim() !== '') splitCommand(exec);
  // Surrounding whitespace (a trailing newline from a secrets file) is never part of a bearer token.
  const envToken = process.env[TOKEN_ENV]?.trim();
  const token = envToken !== undefined && envToken !== '' ? envToken : config.server?.token;
  const secrets = collectSecrets(config.dbs, [token]);
  known.secrets = secrets;

  const logger = createLogger({ ...config.logging, secrets });
  const stop = handleStopSignals(logger);
  const events = new LstreamEmitter();
  const status = new ServerStatus(config.dbs, events, secrets);
  const metrics = new LstreamMetrics();
  const unobserve = metrics.observe(events, () => status.dbs);
  let auth: AuthPolicy = { kind: 'disabled', reason: 'the server is starting' };
  let bound: AddressInfo | undefined;
  const http = createHttpServer({ status, metrics, logger, auth: () => auth, bound: () => bound, secrets });
  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(addr.port, addr.host, () => {
        http.off('error', reject);
        resolve();
      });
    });
    bound = http.address() as AddressInfo;
    const where = authority(bound.address, bound.port);
    auth = authPolicy(isLoopback(bound.address), token, where);
    // A wildcard bind is reachable at 127.0.0.1 too; print an address a browser can open.
    const shown = bound.address === '0.0.0.0' || bound.address === '::' ? authority('127.0.0.1', bound.port) : where;
    logger.info('serving', { url: `http://${shown}/`, addr: where, api: auth.kind });
    if (auth.kind === 'disabled') logger.error(auth.reason);

    // A signal while the databases open stops right after they are open (superviseUntilStopped returns at
    // once), and the exec child is then never started.
    const running = await startDatabases(config.dbs, { logger, events });
    status.attach(running);
    return await superviseUntilStopped(running, stop, {
      exec,
      shownExec: exec && redactText(exec, secrets),
      logger,
      // Requests stop before the final sync; the status page's sampling too.
      beforeClose: () => {
        status.stop();
        http.close();
        http.closeIdleConnections();
      },
    });
  } finally {
    unobserve();
    status.dispose();
    http.closeAllConnections();
    http.close();
    stop.dispose();
  }
}
