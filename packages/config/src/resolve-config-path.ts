import { existsSync } from 'node:fs';

/** Config files used when neither a flag nor an environment variable names one, in order. */
const DEFAULT_PATHS = ['/etc/lstream.yml', '/etc/litestream.yml'];

/**
 * Finds the config file to use: the `-config` flag, then `$LSTREAM_CONFIG`, then
 * `$LITESTREAM_CONFIG`, then `/etc/lstream.yml` and `/etc/litestream.yml` when they exist.
 * Returns undefined when none applies; `explicit` is true when the flag or a variable named the
 * path (so a missing file is an error rather than "no config").
 */
export function resolveConfigPath(
  flag: string | undefined,
  env: Record<string, string | undefined> = process.env,
): { path: string; explicit: boolean } | undefined {
  for (const explicit of [flag, env.LSTREAM_CONFIG, env.LITESTREAM_CONFIG]) {
    if (explicit !== undefined && explicit !== '') return { path: explicit, explicit: true };
  }
  for (const path of DEFAULT_PATHS) {
    if (existsSync(path)) return { path, explicit: false };
  }
  return undefined;
}
