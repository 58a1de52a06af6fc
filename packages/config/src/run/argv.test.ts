import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '@ls/core';
import { describe, expect, it } from 'vitest';
import { normalizeArgv } from './argv.js';

const OPTIONS = {
  o: { type: 'string' },
  config: { type: 'string' },
  'if-db-not-exists': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** What a command sees: the flags as Go's flag package would have parsed them, and the positionals. */
function parse(argv: string[]) {
  return parseArgs({ args: normalizeArgv(argv, OPTIONS), options: OPTIONS, allowPositionals: true, strict: true });
}

describe('normalizeArgv', () => {
  it('reads flags as Go does: one or two dashes, a value after `=` or in the next token, one-letter names', () => {
    for (const argv of [
      ['-o', 'out.db', 'src.db'],
      ['-o=out.db', 'src.db'],
      ['--o', 'out.db', 'src.db'],
      ['--o=out.db', 'src.db'],
      ['src.db', '-o', 'out.db'],
    ]) {
      const r = parse(argv);
      expect(r.values.o, argv.join(' ')).toBe('out.db');
      expect(r.positionals, argv.join(' ')).toEqual(['src.db']);
    }
  });

  it('takes a string flag’s next token as its value even when it starts with a dash', () => {
    expect(parse(['-o', '-x.db', 'src.db']).values.o).toBe('-x.db');
    expect(parse(['-config', '--weird.yml']).values.config).toBe('--weird.yml');
    expect(parse(['-o=', 'src.db']).values.o).toBe('');
  });

  it('accepts Go’s spellings of a boolean flag’s value; false is as if the flag were absent', () => {
    for (const v of ['', '=true', '=1', '=t', '=T', '=TRUE', '=True']) expect(parse([`-json${v}`]).values.json, v).toBe(true);
    for (const v of ['=false', '=0', '=f', '=F', '=FALSE', '=False']) expect(parse([`-json${v}`]).values.json, v).toBeUndefined();
    expect(parse(['-if-db-not-exists=true', 'x']).values['if-db-not-exists']).toBe(true);
  });

  it('maps a one-letter alias to its option', () => {
    expect(parse(['-h']).values.help).toBe(true);
  });

  it('leaves everything after `--` alone', () => {
    expect(parse(['-json', '--', '-o', 'x']).positionals).toEqual(['-o', 'x']);
  });

  it('rejects unknown flags, missing values and bad booleans, naming the flag', () => {
    const cases: [string[], RegExp][] = [
      [['-bogus'], /unknown flag -bogus/],
      [['--bogus=1'], /unknown flag --bogus/],
      [['-x'], /unknown flag -x/],
      [['-o'], /flag needs a value: -o/],
      [['-json=yes'], /invalid boolean value "yes" for flag -json/],
    ];
    for (const [argv, message] of cases) {
      let err: unknown;
      try {
        normalizeArgv(argv, OPTIONS);
      } catch (e) {
        err = e;
      }
      expect(InvalidArgumentError.isInstance(err), argv.join(' ')).toBe(true);
      expect((err as Error).message).toMatch(message);
    }
  });
});
