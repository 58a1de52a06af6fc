import type { Logger } from '@ls/core';
import { redactText } from '../redact-text.js';

/** Log levels in increasing severity. */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const SECRET_KEY = /secret|password|token|credential|access-?key/i;

/** Configures `createLogger`; the `logging:` section of the config file has this shape. */
export interface LoggerOptions {
  level?: Level;
  type?: 'text' | 'json';
  /** Write to stderr instead of stdout. */
  stderr?: boolean;
  /**
   * Credentials (access keys, secret keys, tokens) removed from the message and from every string
   * field, wherever they appear, by `redactText` (which also masks URL user info, signed-URL
   * parameters and authorization headers).
   */
  secrets?: readonly (string | undefined)[];
}

function quote(v: string): string {
  return /^[\w./:@+-]*$/.test(v) && v !== '' ? v : JSON.stringify(v);
}

/** Redacts credentials in every string of a field value (nested arrays and objects included). */
function redactValue(v: unknown, secrets: readonly (string | undefined)[]): unknown {
  if (typeof v === 'string') return redactText(v, secrets);
  if (v instanceof Error) return redactText(v.message, secrets);
  if (Array.isArray(v)) return v.map((x) => redactValue(x, secrets));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, SECRET_KEY.test(k) ? '***' : redactValue(x, secrets)]));
  }
  return v;
}

/** The fields of a record without undefined ones, redacted like any nested object (see redactValue). */
function clean(fields: Record<string, unknown> | undefined, secrets: readonly (string | undefined)[]): Record<string, unknown> {
  const defined = Object.fromEntries(Object.entries(fields ?? {}).filter(([, v]) => v !== undefined));
  return redactValue(defined, secrets) as Record<string, unknown>;
}

/**
 * Creates the apps' logger (CLI and server): one line per record, `time=… level=… msg=… key=value` (text) or JSON, to stdout
 * by default as Litestream does, or stderr. Fields whose names look like credentials are masked, and
 * `options.secrets` plus credential-shaped text (see `redactText`) are masked in the message and every string field.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = ORDER[options.level ?? 'info'];
  const stream = options.stderr ? process.stderr : process.stdout;
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    const time = new Date().toISOString();
    const secrets = options.secrets ?? [];
    const f = clean(fields, secrets);
    const text = redactText(msg, secrets);
    if (options.type === 'json') {
      stream.write(JSON.stringify({ time, level: level.toUpperCase(), msg: text, ...f }) + '\n');
      return;
    }
    let line = `time=${time} level=${level.toUpperCase()} msg=${quote(text)}`;
    for (const [k, v] of Object.entries(f)) line += ` ${k}=${quote(typeof v === 'string' ? v : JSON.stringify(v))}`;
    stream.write(line + '\n');
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}
