import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Rewrites Litestream's single-dash long flags (`-config x`, `-if-db-not-exists`, `-index=1f`) into
 * the `--` form node's parseArgs reads. Only names the command defines are rewritten, so values that
 * start with a dash are left alone; everything after `--` is untouched.
 */
export function normalizeArgv(argv: readonly string[], options: Options): string[] {
  const out: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    const m = /^-([a-zA-Z][\w-]+)(=.*)?$/.exec(a);
    if (m && Object.hasOwn(options, m[1]!)) out.push(`-${a}`);
    else if (m) throw new UsageError(`unknown flag -${m[1]}`);
    else out.push(a);
    // A string option's value is the next token whatever it looks like.
    const name = a.startsWith('--') ? a.slice(2) : m ? m[1]! : undefined;
    if (name && !a.includes('=') && options[name]?.type === 'string' && i + 1 < argv.length) out.push(argv[++i]!);
  }
  return out.concat(argv.slice(i));
}

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
