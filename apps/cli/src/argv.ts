import { parseArgs, type ParseArgsConfig } from 'node:util';
import { normalizeArgv } from '@ls/config';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/** A command's parsed flags (by name) and positional arguments. */
export interface ParsedArgs<O extends Options> {
  values: { [K in keyof O]?: O[K]['type'] extends 'string' ? string : boolean };
  positionals: string[];
}

/** Parses a command's argv (after normalising single-dash flags); unknown flags are a UsageError. */
export function parseCommandArgs<O extends Options>(command: string, argv: readonly string[], options: O): ParsedArgs<O> {
  try {
    return parseArgs({ args: normalizeArgv(argv, options), options, allowPositionals: true, strict: true }) as ParsedArgs<O>;
  } catch (err) {
    throw new UsageError(`${command}: ${(err as Error).message.replace(/\. To specify.*$/s, '')}`, command);
  }
}

/** Flags every command that reads the config file accepts. */
export const CONFIG_FLAGS = {
  config: { type: 'string' },
  'no-expand-env': { type: 'boolean' },
} as const satisfies Options;
