import { CONFIG_FLAGS, parseCommandArgs } from '../argv.js';
import { loadConfig } from '../context.js';
import { UsageError } from '../errors.js';
import { printTable } from '../output.js';

export const usage = `Lists the databases in the config file and their replicas.

Usage:
  lstream databases [flags]

Flags:
  -config PATH      config file
  -no-expand-env    do not expand $VAR in the config file
  -json             print JSON
`;

const OPTIONS = { ...CONFIG_FLAGS, json: { type: 'boolean' } } as const;

/** Runs `lstream databases`. */
export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('databases', argv, OPTIONS);
  if (positionals.length > 0) throw new UsageError('databases: takes no arguments', 'databases');
  const config = (await loadConfig(values, true))!;
  printTable(
    ['path', 'replicas'],
    config.dbs.map((d) => [d.path, d.replicas.map((r) => r.name).join(',')]),
    values.json ?? false,
  );
  return 0;
}
