import type { ReplicaOptions } from '@ls/core';
import { ConfigError } from './config-error.js';
import type { ReplicaConfig } from './config-types.js';
import { expandPath } from './expand-path.js';
import { cleanKeyPrefix, isReplicaUrl, parseReplicaUrl } from './replica-url.js';

/** Holds replica settings as written, before URL parts and defaults are applied. */
export interface RawReplica {
  url?: string | undefined;
  type?: string | undefined;
  name?: string | undefined;
  path?: string | undefined;
  bucket?: string | undefined;
  region?: string | undefined;
  endpoint?: string | undefined;
  forcePathStyle?: boolean | undefined;
  skipVerify?: boolean | undefined;
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
  options: ReplicaOptions;
  line?: number | undefined;
}

/** Names the config keys `buildReplica` can place an error at. */
export type ReplicaKey =
  | 'url'
  | 'type'
  | 'name'
  | 'path'
  | 'bucket'
  | 'region'
  | 'endpoint'
  | 'force-path-style'
  | 'skip-verify'
  | 'access-key-id'
  | 'secret-access-key';

/** Throws a ConfigError placed at `key` of the replica being built (or at the replica itself). */
export type ReplicaFail = (key: ReplicaKey | undefined, problem: string, hint?: string) => never;

const SUPPORTED = ['file', 's3', 'gcs'];

/** Maps a type name to lstream's (`gs` is an alias of `gcs`) and rejects types lstream lacks. */
function checkType(type: string, fail: ReplicaFail): string {
  const t = type === 'gs' ? 'gcs' : type;
  if (t === 'abs' || t === 'sftp') {
    fail('type', `${t} replicas are not supported by lstream yet`, 'Use an s3, gcs or file replica, or keep using Litestream for this database.');
  }
  if (!SUPPORTED.includes(t)) fail('type', `unknown replica type '${type}'`, 'Use file, s3 or gcs.');
  return t;
}

/** Keys that mean nothing for a replica type: a sign that `type` or `url` is missing or wrong. */
const NOT_FOR: Record<string, [ReplicaKey, keyof RawReplica][]> = {
  file: [
    ['bucket', 'bucket'],
    ['region', 'region'],
    ['endpoint', 'endpoint'],
    ['force-path-style', 'forcePathStyle'],
    ['skip-verify', 'skipVerify'],
  ],
  gcs: [
    ['region', 'region'],
    ['endpoint', 'endpoint'],
    ['force-path-style', 'forcePathStyle'],
    ['skip-verify', 'skipVerify'],
  ],
  s3: [],
};

/**
 * Resolves a replica as Litestream v0.3 does: `url` may not be combined with `path` or `bucket`,
 * its scheme sets the type (else `type`, else `file`), its parts fill only blank fields, an explicit
 * `endpoint` implies path-style requests, and `name` defaults to the type. File paths are expanded
 * against `cwd`; S3 and GCS paths become key prefixes.
 */
export function buildReplica(raw: RawReplica, fail: ReplicaFail, cwd: string): ReplicaConfig {
  if (raw.path !== undefined && isReplicaUrl(raw.path)) {
    fail('path', `path '${raw.path}' is a URL`, "Put URLs in the 'url' key instead.");
  }
  if (raw.url !== undefined && raw.path !== undefined) {
    fail('path', "'path' cannot be combined with 'url'", "Put the path in the URL, or drop 'url' and set 'type' and 'path'.");
  }
  if (raw.url !== undefined && raw.bucket !== undefined) {
    fail('bucket', "'bucket' cannot be combined with 'url'", "Put the bucket in the URL, or drop 'url' and set 'type' and 'bucket'.");
  }

  let fromUrl: ReturnType<typeof parseReplicaUrl> | undefined;
  if (raw.url !== undefined) {
    try {
      fromUrl = parseReplicaUrl(raw.url);
    } catch (err) {
      if (err instanceof ConfigError) fail('url', err.problem, err.hint);
      throw err;
    }
  }

  let type: string;
  if (fromUrl) {
    type = fromUrl.type;
    if (raw.type !== undefined && checkType(raw.type, fail) !== type) {
      fail('type', `type '${raw.type}' does not match the URL scheme`, "Drop 'type': the URL's scheme sets it.");
    }
  } else {
    type = checkType(raw.type ?? 'file', fail);
  }

  for (const [key, field] of NOT_FOR[type] ?? []) {
    if (raw[field] !== undefined) {
      fail(key, `'${key}' does not apply to ${type} replicas`, type === 'file' ? "Set 'type' (s3 or gcs) or a 'url' such as s3://bucket/path." : `Remove '${key}'.`);
    }
  }

  const out: ReplicaConfig = { type, name: raw.name ?? type, options: { ...raw.options } };
  if (raw.url !== undefined) out.url = raw.url;

  const path = raw.path ?? fromUrl?.path;
  if (type === 'file') {
    if (path === undefined) fail('path', 'file replicas need a path', "Set 'path' to a directory, or 'url' to file:///absolute/dir.");
    out.path = expandPath(path, cwd);
  } else {
    const bucket = raw.bucket ?? fromUrl?.bucket;
    if (bucket === undefined) {
      fail(raw.url !== undefined ? 'url' : 'bucket', `${type} replicas need a bucket`, `Set 'bucket', or a 'url' such as ${type}://bucket/path.`);
    }
    const prefix = path === undefined ? '' : cleanKeyPrefix(path);
    if (prefix !== '') out.path = prefix;
    out.bucket = bucket;
  }

  if (type === 's3') {
    const region = raw.region ?? fromUrl?.region;
    const endpoint = raw.endpoint ?? fromUrl?.endpoint;
    if (region !== undefined) out.region = region;
    if (endpoint !== undefined) out.endpoint = endpoint;
    out.forcePathStyle = raw.forcePathStyle ?? (raw.endpoint !== undefined || (fromUrl?.forcePathStyle ?? false));
    out.skipVerify = raw.skipVerify ?? false;
  }
  if (raw.accessKeyId !== undefined) out.accessKeyId = raw.accessKeyId;
  if (raw.secretAccessKey !== undefined) out.secretAccessKey = raw.secretAccessKey;
  if (type === 's3' && (out.accessKeyId === undefined) !== (out.secretAccessKey === undefined)) {
    const missing = out.accessKeyId === undefined ? 'access-key-id' : 'secret-access-key';
    fail(
      missing,
      `S3 replicas need both access-key-id and secret-access-key, or neither (then LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY, or the AWS credential chain, are used)`,
      `Set '${missing}' too, or remove the other.`,
    );
  }
  if (raw.line !== undefined) out.line = raw.line;
  return out;
}
