import { readFile } from 'node:fs/promises';
import { ConfigError } from './config-error.js';
import type { LstreamConfig } from './config-types.js';
import { expandPath } from './expand-path.js';
import { parseConfig, type ParseConfigOptions } from './parse-config.js';

/** Configures `loadConfigFile`: the options of `parseConfig` except `file`. */
export type LoadConfigOptions = Omit<ParseConfigOptions, 'file'>;

/**
 * Reads and parses the config file at `path` (`~` expanded, relative to the working directory).
 * Relative database and replica paths in it resolve against the working directory too (or `cwd`),
 * as Litestream resolves them. Throws ConfigError when the file does not exist or cannot be read, and for every problem
 * `parseConfig` reports.
 */
export async function loadConfigFile(path: string, opts: LoadConfigOptions = {}): Promise<LstreamConfig> {
  const file = expandPath(path, process.cwd());
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ConfigError(`config file not found: ${file}`, {
        hint: 'Pass -config with the path of your config file, or create it.',
        cause: err,
      });
    }
    throw new ConfigError(`cannot read config file ${file} (${code ?? String(err)})`, {
      hint: code === 'EACCES' ? 'Check the permissions of the file.' : 'Check that the path names a readable file.',
      cause: err,
    });
  }
  return parseConfig(text, { ...opts, file });
}
