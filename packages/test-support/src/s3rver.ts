/// <reference path="./s3rver-module.d.ts" />
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

// The AWS SDK warns once per process that Node 20 support ends in 2027; keep test output clean.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** s3rver accepts this access key (and any secret: it does not check signatures). */
export const S3RVER_KEY = 'S3RVER';

/** A running in-process s3rver. */
export interface S3rverHandle {
  /** `http(s)://127.0.0.1:<port>` */
  endpoint: string;
  port: number;
  /** The directory s3rver keeps buckets in. */
  dir: string;
  /** Creates a bucket with a random name and returns it. */
  newBucket(): Promise<string>;
  /** Removes a bucket and everything in it (straight from disk). */
  dropBucket(bucket: string): Promise<void>;
  /** Returns the ids of multipart uploads s3rver still holds for `bucket`. */
  pendingUploads(bucket: string): Promise<string[]>;
  stop(): Promise<void>;
}

/** Returns a random lowercase name usable as a bucket or key prefix. */
export function randomName(prefix: string): string {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

/**
 * Starts s3rver (patched, see patches/s3rver@3.7.1.patch) on 127.0.0.1 and a free port, in this
 * process. Its directory is created first: s3rver does not create it. A bucket is a directory in it.
 */
export async function startS3rver(options: { tls?: { key: string; cert: string } } = {}): Promise<S3rverHandle> {
  const dir = await mkdtemp(join(tmpdir(), 'lstream-s3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    ...(options.tls ? { key: options.tls.key, cert: options.tls.cert } : {}),
  });
  const { port } = await server.run();
  return {
    endpoint: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    dir,
    async newBucket() {
      const name = randomName('b');
      await mkdir(join(dir, name), { recursive: true });
      return name;
    },
    async dropBucket(bucket) {
      await rm(join(dir, bucket), { recursive: true, force: true });
    },
    async pendingUploads(bucket) {
      try {
        return await readdir(join(dir, bucket, '._S3rver_uploads'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
    },
    async stop() {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
