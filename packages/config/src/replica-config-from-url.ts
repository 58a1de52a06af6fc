import type { ReplicaOptions } from '@ls/core';
import { buildReplica } from './build-replica.js';
import { ConfigError } from './config-error.js';
import type { ReplicaConfig } from './config-types.js';

/**
 * Builds the config of a replica given only by URL, as in `lstream replicate DB_PATH URL...`.
 * `options.name` becomes the replica's name (default its type); the other options are kept.
 * Throws ConfigError for anything `parseReplicaUrl` rejects, and for URLs that lack a bucket.
 */
export function replicaConfigFromUrl(url: string, options: ReplicaOptions = {}): ReplicaConfig {
  const { name, ...rest } = options;
  return buildReplica(
    { url, name, options: rest },
    (_key, problem, hint) => {
      throw new ConfigError(problem, hint === undefined ? {} : { hint });
    },
    process.cwd(),
  );
}
