import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Db, LockFile, LockedError, LstreamEmitter, lz4Backend, noopLogger, type Logger, type Replica } from '@ls/core';
import { createReplicaClient } from './client-factory.js';
import { ConfigError } from './config-error.js';
import type { DbConfig } from './config-types.js';

/** Name of the lock file lstream keeps in a file replica's directory while it writes there. */
export const REPLICA_LOCK_NAME = '.lstream.lock';

/** Databases being replicated, opened by `startDatabases`. */
export interface RunningDatabases {
  dbs: Db[];
  /** Events of every database and replica. */
  events: LstreamEmitter;
  /** Final sync of every database and replica, then releases every lock. Rejects with the first error. */
  close(options?: { signal?: AbortSignal }): Promise<void>;
}

/**
 * Opens every database of a config with its replicas and starts replicating them. A file replica's
 * directory is locked so a second lstream cannot write the same replica; two databases of one config
 * may not share a replica path. On any failure, whatever was opened is closed again.
 */
export async function startDatabases(
  dbs: readonly DbConfig[],
  options: { logger?: Logger; events?: LstreamEmitter } = {},
): Promise<RunningDatabases> {
  const logger = options.logger ?? noopLogger;
  const events = options.events ?? new LstreamEmitter();
  const seen = new Map<string, string>();
  for (const d of dbs) {
    for (const r of d.replicas) {
      if (r.type !== 'file' || r.path === undefined) continue;
      const other = seen.get(r.path);
      if (other !== undefined) {
        const who = other === d.path ? `two replicas of database ${d.path}` : `databases ${other} and ${d.path}`;
        throw new ConfigError(`${who} both replicate to ${r.path}`, {
          hint: 'Give each replica its own path; they would overwrite each other.',
          line: r.line,
        });
      }
      seen.set(r.path, d.path);
    }
  }
  const opened: Db[] = [];
  const locks: LockFile[] = [];
  const release = async () => {
    for (const l of locks.splice(0)) await l.release();
  };
  const lz4 = lz4Backend();
  if (lz4.name !== 'liblz4') {
    logger.warn('LZ4 runs on lz4-napi, about half as fast as liblz4 (snapshots, segments and restores take longer)', { reason: lz4.reason });
  }
  try {
    for (const d of dbs) {
      const db = new Db(d.path, { ...d.options, logger, events });
      for (const r of d.replicas) {
        let replica: Replica | undefined;
        if (r.type === 'file' && r.path !== undefined) {
          const path = r.path;
          try {
            await mkdir(path, { recursive: true });
            locks.push(
              await LockFile.acquire(join(path, REPLICA_LOCK_NAME), `replica path ${path}`, {
                // Another lstream took this replica path over (this one was paused on another host):
                // it is theirs now, so this replica stops writing there.
                onLost: (holder) => {
                  logger.error('lost the lock of a replica path to another lstream; stopped that replica', {
                    db: d.path,
                    replica: r.name,
                    path,
                    holder: `process ${holder.pid} on ${holder.host}`,
                  });
                  void replica?.stop({ finalSync: false }).catch(() => undefined);
                },
              }),
            );
          } catch (err) {
            if (LockedError.isInstance(err)) throw err;
            const code = (err as NodeJS.ErrnoException).code ?? String(err);
            throw new ConfigError(`cannot use the replica directory ${path} (${code}): lstream keeps a lock file there while it writes`, {
              hint: 'Make the directory writable for the user lstream runs as, or fix the path.',
              line: r.line,
              cause: err,
            });
          }
        }
        replica = db.addReplica(await createReplicaClient(r), { ...r.options, name: r.name });
      }
      await db.open();
      opened.push(db);
      if (d.replicas.length === 0) {
        logger.warn('database has no replicas: it is monitored and checkpointed, but not replicated', { db: d.path });
      } else {
        logger.info('replicating database', { db: d.path, replicas: d.replicas.map((r) => r.name).join(',') });
      }
    }
  } catch (err) {
    for (const db of opened) await db.close().catch(() => undefined);
    await release();
    throw err;
  }
  return {
    dbs: opened,
    events,
    async close(closeOptions = {}) {
      let first: unknown;
      await Promise.all(
        opened.map((db) =>
          db.close(closeOptions).catch((err: unknown) => {
            const error = closeOptions.signal?.aborted
              ? 'the shutdown deadline passed before the final sync finished; the last commits may be missing from the replicas'
              : String(err);
            logger.error('final sync failed', { db: db.path, error });
            first ??= err;
          }),
        ),
      );
      await release();
      if (first !== undefined) throw first;
    },
  };
}
