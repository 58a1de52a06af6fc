import { stat } from 'node:fs/promises';
import { collect, listGenerations, listSnapshots, listWalSegments } from '@ls/core';
import { CONFIG_FLAGS, parseCommandArgs } from '../argv.js';
import { listEachReplica, resolveListedReplicas } from '../context.js';
import { UsageError } from '../errors.js';
import { formatDuration, printTable, type Cell } from '../output.js';

export const usage = `Lists the generations of a database's replicas, with how far each is behind the database.

Usage:
  lstream generations [flags] DB_PATH
  lstream generations [flags] REPLICA_URL

Flags:
  -config PATH      config file (default $LSTREAM_CONFIG, $LITESTREAM_CONFIG, /etc/lstream.yml, /etc/litestream.yml)
  -no-expand-env    do not expand $VAR in the config file
  -replica NAME     only this replica
  -json             print JSON
`;

const OPTIONS = { ...CONFIG_FLAGS, replica: { type: 'string' }, json: { type: 'boolean' } } as const;

async function lastModified(dbPath: string): Promise<number | undefined> {
  let t: number | undefined;
  for (const p of [dbPath, `${dbPath}-wal`]) {
    try {
      const m = (await stat(p)).mtimeMs;
      t = t === undefined ? m : Math.max(t, m);
    } catch {
      // a missing file contributes no time
    }
  }
  return t;
}

/** Runs `lstream generations`. */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('generations', argv, OPTIONS);
  if (positionals.length !== 1) throw new UsageError('generations: expected one database path or replica URL', 'generations');
  const replicas = await resolveListedReplicas(positionals[0]!, values);
  const { rows, failed } = await listEachReplica('generations', replicas, async (r) => {
    const out: Cell[][] = [];
    const updated = r.db ? await lastModified(r.db.path) : undefined;
    for (const gen of await listGenerations(r.client)) {
      const times = [
        ...(await collect(listSnapshots(r.client, gen))),
        ...(await collect(listWalSegments(r.client, gen))),
      ].map((x) => x.createdAt.getTime());
      if (times.length === 0) continue;
      const start = Math.min(...times);
      const end = Math.max(...times);
      const lag = updated === undefined ? '-' : formatDuration(updated - end);
      out.push([r.config.name, gen, lag, new Date(start), new Date(end)]);
    }
    return out;
  });
  printTable(['name', 'generation', 'lag', 'start', 'end'], rows, values.json ?? false);
  return failed ? 1 : 0;
}
