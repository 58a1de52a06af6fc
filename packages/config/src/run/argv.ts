import type { ParseArgsConfig } from 'node:util';
import { InvalidArgumentError } from '@ls/core';

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Rewrites Litestream's single-dash long flags (`-config x`, `-if-db-not-exists`, `-index=1f`) into
 * the `--` form node's parseArgs reads. Only names in `options` are rewritten, so values that start
 * with a dash are left alone; everything after `--` is untouched. Throws InvalidArgumentError for a
 * single-dash flag `options` does not define.
 */
export function normalizeArgv(argv: readonly string[], options: Options): string[] {
  const out: string[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    const m = /^-([a-zA-Z][\w-]+)(=.*)?$/.exec(a);
    if (m && Object.hasOwn(options, m[1]!)) out.push(`-${a}`);
    else if (m) throw new InvalidArgumentError(`unknown flag -${m[1]}`);
    else out.push(a);
    // A string option's value is the next token whatever it looks like.
    const name = a.startsWith('--') ? a.slice(2) : m ? m[1]! : undefined;
    if (name && !a.includes('=') && options[name]?.type === 'string' && i + 1 < argv.length) out.push(argv[++i]!);
  }
  return out.concat(argv.slice(i));
}
