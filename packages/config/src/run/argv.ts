import type { ParseArgsConfig } from 'node:util';
import { InvalidArgumentError } from '@ls/core';

type Options = NonNullable<ParseArgsConfig['options']>;

/** The spellings Go's flag package accepts for a boolean flag's `=value`. */
const GO_TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const GO_FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

/**
 * Rewrites flags as Litestream's Go flag parsing reads them into the `--name=value` form node's
 * parseArgs reads: single-dash long and one-letter flags (`-config x`, `-o out.db`, `-index=1f`),
 * a string flag's value taken from the next token whatever it looks like (`-o -x.db`), and a boolean
 * flag's `=true` / `=false` (`-json=false` is as if the flag were absent). Only names in `options`
 * are rewritten; everything after `--` is untouched. Throws InvalidArgumentError for a flag `options`
 * does not define, a string flag with no value, or a boolean value Go would refuse.
 */
export function normalizeArgv(argv: readonly string[], options: Options): string[] {
  const shorts = new Map(Object.entries(options).flatMap(([n, o]) => (o.short ? [[o.short, n] as const] : [])));
  const out: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    const m = /^--?([a-zA-Z][\w-]*)(?:=([\s\S]*))?$/.exec(a);
    if (!m) {
      out.push(a);
      continue;
    }
    const [, given, inline] = m as unknown as [string, string, string | undefined];
    const dashes = a.startsWith('--') ? '--' : '-';
    // A one-letter alias (`short`) stands for its option.
    const name = Object.hasOwn(options, given) ? given : (dashes === '-' && shorts.get(given)) || given;
    const option = Object.hasOwn(options, name) ? options[name] : undefined;
    if (!option) throw new InvalidArgumentError(`unknown flag ${dashes}${given}`);
    if (option.type === 'boolean') {
      if (inline === undefined || GO_TRUE.has(inline)) out.push(`--${name}`);
      else if (!GO_FALSE.has(inline)) throw new InvalidArgumentError(`invalid boolean value "${inline}" for flag ${dashes}${name}`);
      continue;
    }
    if (inline !== undefined) {
      out.push(`--${name}=${inline}`);
    } else if (i + 1 < argv.length) {
      out.push(`--${name}=${argv[++i]!}`);
    } else {
      throw new InvalidArgumentError(`flag needs a value: ${dashes}${name}`);
    }
  }
  return out.concat(argv.slice(i));
}
