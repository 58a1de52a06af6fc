import { createFileReplicaClient } from '@ls/client-file';
import { InvalidArgumentError, type ReplicaClient } from '@ls/core';
import { ConfigError } from './config-error.js';
import type { ReplicaConfig } from './config-types.js';

/** Builds the ReplicaClient of one replica. */
export type ClientFactory = (replica: ReplicaConfig) => ReplicaClient | Promise<ReplicaClient>;

function fileClient(replica: ReplicaConfig): ReplicaClient {
  if (replica.path === undefined || replica.path === '') {
    throw new ConfigError(`file replica '${replica.name}' has no path`, {
      hint: "Set 'path' to a directory, or 'url' to file:///absolute/dir.",
    });
  }
  return createFileReplicaClient({ root: replica.path });
}

function bucketOf(replica: ReplicaConfig): string {
  const { bucket } = replica;
  if (bucket === undefined || bucket === '') {
    throw new ConfigError(`${replica.type} replica '${replica.name}' has no bucket`, {
      hint: `Set 'bucket', or 'url' to ${replica.type}://bucket/path.`,
      ...(replica.line !== undefined ? { line: replica.line } : {}),
    });
  }
  return bucket;
}

/**
 * Imports a client package when the first replica of its type is built, so a process that only
 * uses file replicas never loads a cloud SDK (the AWS SDK alone adds ~0.5 s to start-up).
 */
async function load<T>(pkg: string, importer: () => Promise<T>, type: string): Promise<T> {
  try {
    return await importer();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(pkg)) {
      throw new ConfigError(`replica type '${type}' needs the ${pkg} package, which is not installed`, {
        hint: `Install ${pkg} next to @ls/config, or use a file replica.`,
      });
    }
    throw err;
  }
}

async function s3Client(replica: ReplicaConfig): Promise<ReplicaClient> {
  const bucket = bucketOf(replica);
  const { createS3ReplicaClient } = await load('@ls/client-s3', () => import('@ls/client-s3'), 's3');
  // Replica settings carry the S3 client's option names (bucket, path, region, endpoint, ...).
  return createS3ReplicaClient({ ...replica, bucket });
}

async function gcsClient(replica: ReplicaConfig): Promise<ReplicaClient> {
  const bucket = bucketOf(replica);
  const { createGcsReplicaClient } = await load('@ls/client-gcs', () => import('@ls/client-gcs'), 'gcs');
  return createGcsReplicaClient({ bucket, path: replica.path });
}

const factories = new Map<string, ClientFactory>([
  ['file', fileClient],
  ['s3', s3Client],
  ['gcs', gcsClient],
]);

/** Registers `factory` as the way to build clients of `type`, replacing any earlier one (the built-in file, s3 and gcs too). */
export function registerClientFactory(type: string, factory: ClientFactory): void {
  if (type === '') throw new InvalidArgumentError('registerClientFactory needs a replica type');
  factories.set(type, factory);
}

/**
 * Builds the ReplicaClient of `replica` with the factory registered for its type (`file`, `s3` and
 * `gcs` are built in). Throws ConfigError when no factory is registered for the type.
 */
export async function createReplicaClient(replica: ReplicaConfig): Promise<ReplicaClient> {
  const factory = factories.get(replica.type);
  if (factory) return factory(replica);
  throw new ConfigError(`unknown replica type '${replica.type}'`, { hint: 'Use file, s3 or gcs.' });
}
