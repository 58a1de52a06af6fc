import { createFileReplicaClient } from '@ls/client-file';
import { InvalidArgumentError, type ReplicaClient } from '@ls/core';
import { ConfigError } from './config-error.js';
import type { ReplicaConfig } from './config-types.js';

/** Builds the ReplicaClient of one replica. */
export type ClientFactory = (replica: ReplicaConfig) => ReplicaClient | Promise<ReplicaClient>;

/** Packages that provide the client of each storage type lstream knows. */
const CLIENT_PACKAGES: Record<string, string> = { s3: '@ls/client-s3', gcs: '@ls/client-gcs' };

function fileClient(replica: ReplicaConfig): ReplicaClient {
  if (replica.path === undefined || replica.path === '') {
    throw new ConfigError(`file replica '${replica.name}' has no path`, {
      hint: "Set 'path' to a directory, or 'url' to file:///absolute/dir.",
    });
  }
  return createFileReplicaClient({ root: replica.path });
}

const factories = new Map<string, ClientFactory>([['file', fileClient]]);

/** Registers `factory` as the way to build clients of `type`, replacing any earlier one. */
export function registerClientFactory(type: string, factory: ClientFactory): void {
  if (type === '') throw new InvalidArgumentError('registerClientFactory needs a replica type');
  factories.set(type, factory);
}

/**
 * Builds the ReplicaClient of `replica` with the factory registered for its type (`file` is built
 * in). Throws ConfigError when no factory is registered for the type.
 */
export async function createReplicaClient(replica: ReplicaConfig): Promise<ReplicaClient> {
  const factory = factories.get(replica.type);
  if (factory) return factory(replica);
  const pkg = CLIENT_PACKAGES[replica.type];
  if (pkg !== undefined) {
    throw new ConfigError(`replica type '${replica.type}' needs the ${pkg} package, which is not available in this build`, {
      hint: 'Use a build of lstream that includes it, or a file replica.',
    });
  }
  throw new ConfigError(`unknown replica type '${replica.type}'`, { hint: 'Use file, s3 or gcs.' });
}
