import type { LstreamConfig } from './config-types.js';

/** What credentials are replaced with. */
const MASK = '***';

/** Returns a deep copy of `config` with every access key id, secret access key and server token replaced by `***`, for logging. */
export function redactConfig(config: LstreamConfig): LstreamConfig {
  const copy = structuredClone(config);
  if (copy.server?.token !== undefined) copy.server.token = MASK;
  for (const db of copy.dbs) {
    for (const r of db.replicas) {
      if (r.accessKeyId !== undefined) r.accessKeyId = MASK;
      if (r.secretAccessKey !== undefined) r.secretAccessKey = MASK;
    }
  }
  return copy;
}
