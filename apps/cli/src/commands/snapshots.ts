import { listGenerations, listSnapshots } from '@ls/core';
import { CONFIG_FLAGS, parseCommandArgs } from '../argv.js';
import { listEachReplica, resolveListedReplicas } from '../context.js';
import { UsageError } from '../errors.js';
import { printTable, type Cell } from '../output.js';

export const usage = `Lists the snapshots of a database's replicas (index in decimal, as Litestream prints it).

Usage:
  lstream snapshots [flags] DB_PATH
  lstream snapshots [flags] REPLICA_URL

Flags:
  -config PATH      config file
  -no-expand-env    do not expand $VAR in the config file
  -replica NAME     only this replica
  -json             print JSON
`;

const OPTIONS = { ...CONFIG_FLAGS, replica: { type: 'string' }, json: { type: 'boolean' } } as const;

/** Runs `lstream snapshots`. */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('snapshots', argv, OPTIONS);
  if (positionals.length !== 1) throw new UsageError('snapshots: expected one database path or replica URL', 'snapshots');
  const { rows, failed } = await listEachReplica('snapshots', await resolveListedReplicas(positionals[0]!, values), async (r) => {
    const out: Cell[][] = [];
    for (const gen of await listGenerations(r.client)) {
      for await (const s of listSnapshots(r.client, gen)) {
        out.push([r.config.name, gen, s.index, s.size, s.createdAt]);
      }
    }
    return out;
  });
  printTable(['replica', 'generation', 'index', 'size', 'created'], rows, values.json ?? false);
  return failed ? 1 : 0;
}
