/** Structured fields attached to a log line. Never put credentials here. */
export type LogFields = Record<string, unknown>;

/**
 * The logger lstream libraries write to. Libraries never use the console: apps pass a logger (pino
 * fits this shape) and the default drops everything.
 */
export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

/** A Logger that drops every line. */
export const noopLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
});
