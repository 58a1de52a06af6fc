import { isGenerationName, listGenerations, listWalSegments } from '@ls/core';
import { CONFIG_FLAGS, parseCommandArgs } from '../argv.js';
import { listEachReplica, resolveListedReplicas } from '../context.js';
import { UsageError } from '../errors.js';
import { printTable, type Cell } from '../output.js';

export const usage = `Lists the WAL segments of a database's replicas (index and offset in decimal, as Litestream prints them).

Usage:
  lstream wal [flags] DB_PATH
  lstream wal [flags] REPLICA_URL

Flags:
  -config PATH        config file
  -no-expand-env      do not expand $VAR in the config file
  -replica NAME       only this replica
  -generation NAME    only this generation
  -json               print JSON
`;

const OPTIONS = {
  ...CONFIG_FLAGS,
  replica: { type: 'string' },
  generation: { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** Runs `lstream wal`. */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('wal', argv, OPTIONS);
  if (positionals.length !== 1) throw new UsageError('wal: expected one database path or replica URL', 'wal');
  if (values.generation !== undefined && !isGenerationName(values.generation)) {
    throw new UsageError(`wal: '${values.generation}' is not a generation name (16 lowercase hex digits)`, 'wal');
  }
  const { rows, failed } = await listEachReplica('wal', await resolveListedReplicas(positionals[0]!, values), async (r) => {
    const out: Cell[][] = [];
    const gens = values.generation !== undefined ? [values.generation] : await listGenerations(r.client);
    for (const gen of gens) {
      for await (const s of listWalSegments(r.client, gen)) {
        out.push([r.config.name, gen, s.index, s.offset, s.size, s.createdAt]);
      }
    }
    return out;
  });
  printTable(['replica', 'generation', 'index', 'offset', 'size', 'created'], rows, values.json ?? false);
  return failed ? 1 : 0;
}
