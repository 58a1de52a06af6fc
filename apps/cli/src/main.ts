import { guardStdio } from '@ls/config';
import { LstreamError } from '@ls/core';
import * as databases from './commands/databases.js';
import * as generations from './commands/generations.js';
import * as replicate from './commands/replicate.js';
import * as restore from './commands/restore.js';
import * as snapshots from './commands/snapshots.js';
import * as version from './commands/version.js';
import * as wal from './commands/wal.js';
import { redactOutput } from './context.js';
import { UsageError } from './errors.js';

interface Command {
  usage: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, Command> = { databases, generations, replicate, restore, snapshots, version, wal };

const USAGE = `lstream replicates SQLite databases continuously to S3, GCS or local files, and restores them.

Usage:
  lstream <command> [arguments]

Commands:
  databases     list databases in the config file
  generations   list the generations of a database's replicas
  replicate     replicate databases continuously
  restore       restore a database from a replica
  snapshots     list snapshots
  version       print the version
  wal           list WAL segments

Run 'lstream <command> -h' for a command's flags. Flags take one dash or two (-config or --config).
`;

/** Runs the lstream CLI with `argv` (without node and script) and resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  // Output that cannot be written: replicate goes on (its output is its log), other commands stop.
  guardStdio(name === 'replicate' ? 'until-stopped' : 'one-shot');
  if (name === undefined) {
    process.stderr.write(USAGE);
    return 1;
  }
  if (name === 'help' || name === '-h' || name === '--help') {
    const cmd = rest[0] !== undefined ? COMMANDS[rest[0]] : undefined;
    process.stdout.write(cmd ? cmd.usage : USAGE);
    return 0;
  }
  if (name === '-version' || name === '--version') return version.run();
  const cmd = COMMANDS[name];
  if (!cmd) {
    process.stderr.write(`lstream: unknown command '${name}'\n\n${USAGE}`);
    return 1;
  }
  if (rest.includes('-h') || rest.includes('--help') || rest.includes('-help')) {
    process.stdout.write(cmd.usage);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      const usage = err.command ? COMMANDS[err.command]?.usage : undefined;
      process.stderr.write(`lstream: ${err.message}\n${usage ? `\n${usage}` : ''}`);
      return 1;
    }
    const code = LstreamError.isInstance(err) ? ` [${(err as LstreamError).code}]` : '';
    // Storage errors can quote a request; whatever credential it held is masked.
    process.stderr.write(redactOutput(`lstream: ${(err as Error)?.message ?? String(err)}${code}\n`));
    if (process.env.LSTREAM_DEBUG) process.stderr.write(redactOutput(`${(err as Error)?.stack ?? ''}\n`));
    return 1;
  }
}
