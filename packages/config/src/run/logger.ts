import type { Logger } from '@ls/core';

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
}

function quote(v: string): string {
  return /^[\w./:@+-]*$/.test(v) && v !== '' ? v : JSON.stringify(v);
}

function clean(fields: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields ?? {})) {
    if (v === undefined) continue;
    out[k] = SECRET_KEY.test(k) ? '***' : v instanceof Error ? v.message : v;
  }
  return out;
}

/**
 * Creates the apps' logger (CLI and server): one line per record, `time=… level=… msg=… key=value` (text) or JSON, to stdout
 * by default as Litestream does, or stderr. Fields whose names look like credentials are redacted.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const min = ORDER[options.level ?? 'info'];
  const stream = options.stderr ? process.stderr : process.stdout;
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    const time = new Date().toISOString();
    const f = clean(fields);
    if (options.type === 'json') {
      stream.write(JSON.stringify({ time, level: level.toUpperCase(), msg, ...f }) + '\n');
      return;
    }
    let line = `time=${time} level=${level.toUpperCase()} msg=${quote(msg)}`;
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
