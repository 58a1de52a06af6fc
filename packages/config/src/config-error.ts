import { LstreamError } from '@ls/core';

/** Says where a configuration problem was found, and what to do about it. */
export interface ConfigErrorOptions {
  /** Dotted path of the offending key, such as `dbs[0].replicas[1].sync-interval`. */
  key?: string;
  /** 1-based line in the config file. */
  line?: number;
  /** Path of the config file. */
  file?: string;
  /** What to do about it, as a sentence. */
  hint?: string;
  cause?: unknown;
}

/**
 * Raised for a config file or replica URL lstream cannot use: a YAML syntax error, an unknown key,
 * a bad value, or a feature lstream does not support yet. `key`, `line` and `file` say where;
 * the message reads `<file>:<line>: <key>: <problem>. <what to do>` with missing parts left out.
 */
export class ConfigError extends LstreamError {
  /** Dotted path of the offending key, such as `dbs[0].replicas[1].sync-interval`. */
  readonly key?: string;
  /** 1-based line in the config file. */
  readonly line?: number;
  /** Path of the config file. */
  readonly file?: string;
  /** The problem alone, without location or hint. */
  readonly problem: string;
  /** What to do about it, when there is advice to give. */
  readonly hint?: string;

  constructor(problem: string, options: ConfigErrorOptions = {}) {
    super('ECONFIG', formatMessage(problem, options), options.cause === undefined ? undefined : { cause: options.cause });
    this.problem = problem;
    if (options.key !== undefined) this.key = options.key;
    if (options.line !== undefined) this.line = options.line;
    if (options.file !== undefined) this.file = options.file;
    if (options.hint !== undefined) this.hint = options.hint;
  }
}

function formatMessage(problem: string, o: ConfigErrorOptions): string {
  let where = '';
  if (o.file !== undefined && o.line !== undefined) where = `${o.file}:${o.line}: `;
  else if (o.file !== undefined) where = `${o.file}: `;
  else if (o.line !== undefined) where = `line ${o.line}: `;
  const key = o.key !== undefined ? `${o.key}: ` : '';
  const body = /[.!?]$/.test(problem) ? problem : `${problem}.`;
  const hint = o.hint ? ` ${o.hint}` : '';
  return `${where}${key}${body}${hint}`;
}
