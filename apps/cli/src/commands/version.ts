import { createRequire } from 'node:module';

export const usage = `Prints the version of lstream.

Usage:
  lstream version
`;

/** Returns lstream's version, from its package.json. */
export function version(): string {
  const require = createRequire(import.meta.url);
  return (require('../package.json') as { version: string }).version;
}

/** Runs `lstream version`. */
export async function run(): Promise<number> {
  process.stdout.write(`lstream v${version()}\n`);
  return 0;
}
