import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  ConfigError,
  collectSecrets,
  createReplicaClient,
  isReplicaUrl,
  loadConfigFile,
  redactText,
  replicaConfigFromUrl,
  resolveConfigPath,
  type DbConfig,
  type LstreamConfig,
  type ReplicaConfig,
} from '@ls/config';
import type { ReplicaClient } from '@ls/core';
import { UsageError } from './errors.js';

/** Databases of the config files this process loaded: their credentials are never printed. */
const loaded: DbConfig[] = [];

/** Returns the credentials this process must never print: those of loaded configs and of the environment. */
export function knownSecrets(): string[] {
  return collectSecrets(loaded);
}

/** Returns `text` with every known credential masked (for anything the CLI prints outside a logger). */
export function redactOutput(text: string): string {
  return redactText(text, knownSecrets());
}

/** Loads the config file named by `-config` or the usual lookup; undefined when there is none and none was asked for. */
export async function loadConfig(flags: { config?: string; 'no-expand-env'?: boolean }, required: boolean): Promise<LstreamConfig | undefined> {
  const found = resolveConfigPath(flags.config);
  if (!found) {
    if (!required) return undefined;
    throw new UsageError(
      'no config file: pass -config PATH, set $LSTREAM_CONFIG or $LITESTREAM_CONFIG, or create /etc/lstream.yml or /etc/litestream.yml (or give a replica URL instead of a database path)',
    );
  }
  const config = await loadConfigFile(found.path, { expandEnv: !flags['no-expand-env'] });
  loaded.push(...config.dbs);
  return config;
}

/** Finds the config entry of the database at `path`. */
export function findDb(config: LstreamConfig, path: string): DbConfig {
  const abs = resolve(path);
  const db = config.dbs.find((d) => d.path === abs);
  if (!db) {
    throw new ConfigError(`database ${abs} is not in the config file${config.file ? ` ${config.file}` : ''}`, {
      hint: `Configured databases: ${config.dbs.map((d) => d.path).join(', ') || 'none'}.`,
    });
  }
  return db;
}

/** A replica resolved from the command line: its config and client. */
export interface ResolvedReplica {
  config: ReplicaConfig;
  client: ReplicaClient;
  /** The database it belongs to (config mode only). */
  db?: DbConfig;
}

/**
 * Resolves the replicas a read command works on: from a URL argument, or from the config entry of
 * the database argument (all of them, or the one named by `-replica`).
 */
export async function resolveReplicas(
  target: string,
  flags: { config?: string; 'no-expand-env'?: boolean; replica?: string },
): Promise<ResolvedReplica[]> {
  if (isReplicaUrl(target)) {
    if (flags.config !== undefined) throw new UsageError('cannot specify a replica URL and the -config flag together');
    const config = replicaConfigFromUrl(target);
    return [{ config, client: await createReplicaClient(config) }];
  }
  const cfg = (await loadConfig(flags, true))!;
  const db = findDb(cfg, target);
  let replicas = db.replicas;
  if (flags.replica !== undefined) {
    replicas = replicas.filter((r) => r.name === flags.replica);
    if (replicas.length === 0) {
      throw new UsageError(`database ${db.path} has no replica named '${flags.replica}'; it has ${db.replicas.map((r) => r.name).join(', ')}`);
    }
  }
  return Promise.all(replicas.map(async (r) => ({ config: r, client: await createReplicaClient(r), db })));
}

/**
 * Lists each replica with `list`, which returns its rows. With several replicas, one whose listing
 * fails is reported on stderr (naming it) and the others are still listed; `failed` is then true,
 * for a non-zero exit. A single replica's failure is thrown, as any other error of the command.
 */
export async function listEachReplica<R extends { config: { name: string } }, T>(
  command: string,
  replicas: R[],
  list: (r: R) => Promise<T[]>,
): Promise<{ rows: T[]; failed: boolean }> {
  const rows: T[] = [];
  let failed = false;
  for (const r of replicas) {
    try {
      rows.push(...(await list(r)));
    } catch (err) {
      if (replicas.length === 1) throw err;
      failed = true;
      process.stderr.write(redactOutput(`lstream ${command}: replica ${r.config.name}: ${(err as Error)?.message ?? String(err)}\n`));
    }
  }
  return { rows, failed };
}

/**
 * Resolves the replicas a listing command works on (see `resolveReplicas`), and notes on stderr each
 * file replica whose directory does not exist: its listing is empty because nothing was replicated
 * there yet, or because the path is mistyped, and an empty table alone does not say which.
 */
export async function resolveListedReplicas(
  target: string,
  flags: { config?: string; 'no-expand-env'?: boolean; replica?: string },
): Promise<ResolvedReplica[]> {
  const replicas = await resolveReplicas(target, flags);
  for (const r of replicas) {
    const problem = r.config.type === 'file' && r.config.path !== undefined ? missingDirectory(r.config.path) : undefined;
    const why = problem === 'does not exist' ? `${problem} (nothing replicated there yet, or a mistyped path)` : problem;
    if (why) process.stderr.write(`lstream: replica ${r.config.name}: ${r.config.path} ${why}\n`);
  }
  return replicas;
}

/**
 * Why a file replica's directory holds nothing: it does not exist (nothing replicated there yet, or
 * a mistyped path), or it is not a directory (the database file given for its replica, say).
 * Undefined when it is a directory, and when it cannot be looked at (the listing then says why).
 */
export function missingDirectory(path: string): 'does not exist' | 'is not a directory' | undefined {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    if (st === undefined) return 'does not exist';
    return st.isDirectory() ? undefined : 'is not a directory';
  } catch {
    return undefined;
  }
}
