import type { DbConfig } from '../config-types.js';

/** Environment variables whose values are credentials, kept out of every log line and response. */
export const CREDENTIAL_ENV_VARS = [
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'LITESTREAM_ACCESS_KEY_ID',
  'LITESTREAM_SECRET_ACCESS_KEY',
  'LSTREAM_SERVER_TOKEN',
] as const;

/**
 * Returns the credentials a running process must never print: the access key ids and secret keys of
 * every replica of `dbs`, the `extra` values (such as the server token), and the values of
 * CREDENTIAL_ENV_VARS in `env`. Values are trimmed as well as kept as given, empty ones dropped, longest first.
 */
export function collectSecrets(
  dbs: readonly DbConfig[],
  extra: readonly (string | undefined)[] = [],
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  const raw = [
    ...dbs.flatMap((d) => d.replicas.flatMap((r) => [r.accessKeyId, r.secretAccessKey])),
    ...extra,
    ...CREDENTIAL_ENV_VARS.map((name) => env[name]),
  ];
  const out = new Set<string>();
  for (const s of raw) {
    if (s === undefined) continue;
    for (const v of [s, s.trim()]) if (v !== '') out.add(v);
  }
  // Longest first, so a secret that contains another is masked whole.
  return [...out].sort((a, b) => b.length - a.length);
}
