import type { DbOptions, ReplicaOptions } from '@ls/core';
import { buildReplica, type RawReplica } from './build-replica.js';
import type { DbConfig, LoggingConfig, LstreamConfig, ReplicaConfig, ServerConfig } from './config-types.js';
import { expandEnv } from './expand-env.js';
import { expandPath } from './expand-path.js';
import { YamlSource, type Section } from './yaml-source.js';

/** Configures `parseConfig`. */
export interface ParseConfigOptions {
  /** Path of the file the text came from; named in errors and kept as `LstreamConfig.file`. */
  file?: string;
  /** Expand `$VAR` and `${VAR}` before parsing, as Litestream does (default true; `-no-expand-env` turns it off). */
  expandEnv?: boolean;
  /** Variables for expansion (default `process.env`). */
  env?: Record<string, string | undefined>;
  /**
   * Directory relative paths are resolved against (default the working directory, as Litestream
   * resolves them: a litestream.yml with `path: app.db` run from the app's directory keeps working).
   */
  cwd?: string;
}

const TOP_KEYS = ['addr', 'exec', 'access-key-id', 'secret-access-key', 'logging', 'server', 'dbs'];
const LOGGING_KEYS = ['level', 'type', 'stderr'];
const SERVER_KEYS = ['token'];
const DB_KEYS = [
  'name',
  'path',
  'meta-path',
  'monitor-interval',
  'checkpoint-interval',
  'busy-timeout',
  'min-checkpoint-page-count',
  'max-checkpoint-page-count',
  'truncate-page-count',
  'max-shadow-wal-size',
  'replicas',
];
const REPLICA_KEYS = [
  'url',
  'type',
  'name',
  'path',
  'retention',
  'retention-check-interval',
  'sync-interval',
  'snapshot-interval',
  'validation-interval',
  'bucket',
  'region',
  'endpoint',
  'force-path-style',
  'skip-verify',
  'access-key-id',
  'secret-access-key',
];

const KEEP_LITESTREAM = 'Remove it, or keep using Litestream for this database.';
const DB_SPECIAL = {
  replica: {
    problem: "'replica' (a single replica) is not part of the Litestream v0.3 format lstream reads",
    hint: "List replicas under 'replicas:' instead, e.g. replicas: [{url: s3://bucket/db}].",
  },
};
const REPLICA_SPECIAL: Record<string, { problem: string; hint: string }> = {
  age: { problem: 'age encryption is not supported by lstream yet', hint: KEEP_LITESTREAM },
};
for (const [key, kind] of [
  ['account-name', 'abs'],
  ['account-key', 'abs'],
  ['host', 'sftp'],
  ['user', 'sftp'],
  ['password', 'sftp'],
  ['key-path', 'sftp'],
] as const) {
  REPLICA_SPECIAL[key] = { problem: `'${key}' configures ${kind} replicas, which are not supported by lstream yet`, hint: KEEP_LITESTREAM };
}

const LEVELS: Record<string, LoggingConfig['level']> = { debug: 'debug', info: 'info', warn: 'warn', warning: 'warn', error: 'error' };

/**
 * Parses the text of an lstream config file (Litestream v0.3 YAML: `addr`, `exec`, `logging`,
 * global credentials and `dbs` with their `replicas`, plus lstream's `server` section) into a validated config. Throws ConfigError,
 * with the key and line, for YAML syntax errors, unknown keys, bad values, duplicate databases or
 * replica names, databases without replicas, and Litestream features lstream does not support yet.
 */
export function parseConfig(text: string, opts: ParseConfigOptions = {}): LstreamConfig {
  const expanded = opts.expandEnv === false ? { text } : expandEnv(text, opts.env ?? process.env);
  const src = new YamlSource(expanded.text, { file: opts.file, lineMap: expanded.lineMap });
  const cwd = opts.cwd ?? process.cwd();

  const top = src.section(src.root, '', 1);
  top.checkKeys(TOP_KEYS);
  const config: LstreamConfig = { logging: parseLogging(top.section('logging')), dbs: [] };
  const addr = top.string('addr');
  const exec = top.string('exec');
  if (addr !== undefined) config.addr = addr;
  if (exec !== undefined) config.exec = exec;
  if (top.has('server')) config.server = parseServer(top.section('server'));
  const global = { accessKeyId: top.string('access-key-id'), secretAccessKey: top.string('secret-access-key') };

  const seenPaths = new Map<string, string>();
  const seenNames = new Map<string, string>();
  const replicaPaths: ReplicaPaths = new Map();
  for (const ds of top.sections('dbs')) {
    const db = parseDb(ds, global, cwd, replicaPaths);
    const first = seenPaths.get(db.path);
    if (first !== undefined) ds.fail('path', `database ${db.path} is already listed as ${first}`, 'List each database once, with all its replicas.');
    seenPaths.set(db.path, ds.path);
    if (db.name !== undefined) {
      const other = seenNames.get(db.name);
      if (other !== undefined) ds.fail('name', `database name '${db.name}' is already used by ${other}`, "Give each database a distinct 'name'.");
      seenNames.set(db.name, ds.path);
    }
    config.dbs.push(db);
  }
  if (addr !== undefined) {
    // Checked here (after the rest) so a bad one is reported with its line, as every other key is.
    const port = /^(?:\[[^\]]+\]|[^:[\]]*):(\d+)$/.exec(addr.trim())?.[1];
    if (port === undefined) top.fail('addr', `${JSON.stringify(addr)} is not host:port`, 'Use ":9090" for every interface, or "127.0.0.1:9090".');
    else if (Number(port) > 65_535) top.fail('addr', `port ${port} is out of range (0-65535)`);
  }
  if (opts.file !== undefined) config.file = opts.file;
  return config;
}

function parseServer(s: Section): ServerConfig {
  s.checkKeys(SERVER_KEYS);
  const server: ServerConfig = {};
  const token = s.string('token');
  if (token !== undefined) {
    const trimmed = token.trim();
    if (trimmed === '') s.fail('token', 'the token is empty', 'Set it to a long random string, or remove the key.');
    // A bearer token is one word on the wire (Authorization: Bearer <token>): one with spaces inside could never match.
    if (/\s/.test(trimmed)) s.fail('token', 'the token contains whitespace', 'Use a token without spaces, tabs or line breaks, e.g. from `openssl rand -hex 32`.');
    server.token = trimmed;
  }
  return server;
}

function parseLogging(s: Section): LoggingConfig {
  s.checkKeys(LOGGING_KEYS);
  const logging: LoggingConfig = { level: 'info', type: 'text', stderr: false };
  const level = s.string('level');
  if (level !== undefined) {
    const l = LEVELS[level.toLowerCase()];
    if (l === undefined) s.fail('level', `invalid logging level '${level}'`, 'Use debug, info, warn or error.');
    logging.level = l;
  }
  const type = s.string('type');
  if (type !== undefined) {
    const t = type.toLowerCase();
    if (t !== 'text' && t !== 'json') s.fail('type', `invalid logging type '${type}'`, 'Use text or json.');
    logging.type = t;
  }
  logging.stderr = s.bool('stderr') ?? false;
  return logging;
}

/** File replica paths seen so far in a config: path → which replica of which database uses it. */
type ReplicaPaths = Map<string, { db: string; where: string }>;

function parseDb(
  s: Section,
  global: { accessKeyId: string | undefined; secretAccessKey: string | undefined },
  cwd: string,
  replicaPaths: ReplicaPaths,
): DbConfig {
  s.checkKeys(DB_KEYS, DB_SPECIAL);
  const rawPath = s.string('path');
  if (rawPath === undefined) s.fail('path', 'database path is required', 'Set path to the SQLite file to replicate.');
  const name = s.string('name');
  if (name !== undefined && !/^[\w.-]+$/.test(name)) {
    s.fail('name', `invalid database name '${name}'`, 'Use letters, digits, dots, dashes and underscores; the name appears in URLs.');
  }

  const options: Omit<DbOptions, 'logger'> = {};
  const metaPath = s.string('meta-path');
  if (metaPath !== undefined) options.metaPath = expandPath(metaPath, cwd);
  setIf(options, 'monitorIntervalMs', s.positiveDuration('monitor-interval', 'lstream checks the WAL at this interval (in Litestream, 0 turned replication off).'));
  setIf(options, 'checkpointIntervalMs', s.duration('checkpoint-interval'));
  setIf(options, 'busyTimeoutMs', s.duration('busy-timeout'));
  setIf(options, 'minCheckpointPageCount', s.int('min-checkpoint-page-count', 1));
  setIf(options, 'maxCheckpointPageCount', s.int('max-checkpoint-page-count'));
  setIf(options, 'truncatePageCount', s.int('truncate-page-count'));
  setIf(options, 'maxShadowWalBytes', s.bytes('max-shadow-wal-size'));
  const { minCheckpointPageCount: min, maxCheckpointPageCount: max, truncatePageCount: truncate } = options;
  if (min !== undefined && max !== undefined && max > 0 && min > max) {
    s.fail('max-checkpoint-page-count', `is ${max}, below min-checkpoint-page-count ${min}`, 'Make it at least min-checkpoint-page-count.');
  }
  if (max !== undefined && truncate !== undefined && truncate > 0 && max > truncate) {
    s.fail('truncate-page-count', `is ${truncate}, below max-checkpoint-page-count ${max}`, 'Make it at least max-checkpoint-page-count.');
  }

  // A database without replicas is accepted, as Litestream accepts it: it is monitored and
  // checkpointed but not replicated (lstream says so when it starts).
  const items = s.has('replicas') ? s.sections('replicas') : [];
  const replicas: ReplicaConfig[] = [];
  const names = new Map<string, string>();
  for (const rs of items) {
    const r = parseReplica(rs, global, cwd);
    const first = names.get(r.name);
    if (first !== undefined) {
      rs.fail(rs.isSet('name') ? 'name' : undefined, `replica name '${r.name}' is already used by ${first}`, "Give each replica of a database a distinct 'name'.");
    }
    names.set(r.name, rs.path);
    replicas.push(r);
  }
  const dbPath = expandPath(rawPath, cwd);
  // Two file replicas in one directory would overwrite each other's generations.
  for (const [k, r] of replicas.entries()) {
    if (r.type !== 'file' || r.path === undefined) continue;
    const other = replicaPaths.get(r.path);
    if (other !== undefined) {
      const whose = other.db === dbPath ? `another replica of this database (${other.where})` : `database ${other.db} (${other.where})`;
      items[k]!.fail(items[k]!.isSet('url') ? 'url' : 'path', `replica path ${r.path} is already used by ${whose}`, 'Give each replica its own path; they would overwrite each other.');
    }
    replicaPaths.set(r.path, { db: dbPath, where: items[k]!.path });
  }
  const db: DbConfig = { path: dbPath, options, replicas };
  if (name !== undefined) db.name = name;
  if (s.line !== undefined) db.line = s.line;
  return db;
}

function parseReplica(s: Section, global: { accessKeyId: string | undefined; secretAccessKey: string | undefined }, cwd: string): ReplicaConfig {
  s.checkKeys(REPLICA_KEYS, REPLICA_SPECIAL);
  const options: ReplicaOptions = {};
  setIf(options, 'syncIntervalMs', s.duration('sync-interval'));
  setIf(options, 'snapshotIntervalMs', s.duration('snapshot-interval'));
  setIf(options, 'retentionMs', s.duration('retention'));
  setIf(options, 'retentionCheckIntervalMs', s.positiveDuration('retention-check-interval', 'Retention is enforced at this interval; set retention: 0 to keep everything.'));
  setIf(options, 'validationIntervalMs', s.duration('validation-interval'));
  const raw: RawReplica = {
    url: s.string('url'),
    type: s.string('type'),
    name: s.string('name'),
    path: s.string('path'),
    bucket: s.string('bucket'),
    region: s.string('region'),
    endpoint: s.string('endpoint'),
    forcePathStyle: s.bool('force-path-style'),
    skipVerify: s.bool('skip-verify'),
    // Global credentials fill replicas that lack their own, as in Litestream.
    accessKeyId: s.string('access-key-id') ?? global.accessKeyId,
    secretAccessKey: s.string('secret-access-key') ?? global.secretAccessKey,
    options,
    line: s.line,
  };
  return buildReplica(raw, (key, problem, hint) => s.fail(key, problem, hint), cwd);
}

function setIf<T extends object, K extends keyof T>(target: T, key: K, value: T[K] | undefined): void {
  if (value !== undefined) target[key] = value;
}
