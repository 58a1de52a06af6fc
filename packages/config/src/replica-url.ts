import { posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from './config-error.js';
import type { ReplicaConfig } from './config-types.js';
import { parseS3Host } from './s3-host.js';

const URL_HINT = 'Replica URLs look like s3://bucket/path, gcs://bucket/path or file:///absolute/dir.';

/** Returns true when `s` has a URL scheme (`scheme://`), false for a plain path. */
export function isReplicaUrl(s: string): boolean {
  return /^\w+:\/\//.test(s);
}

/**
 * Returns an object key prefix with `.` and `..` segments resolved and no leading or trailing
 * slash, as Litestream cleans URL paths; an empty prefix comes back as ''.
 */
export function cleanKeyPrefix(p: string): string {
  const clean = posix.normalize(`/${p}`).replace(/^\/+/, '').replace(/\/+$/, '');
  return clean === '.' ? '' : clean;
}

function decodePath(pathname: string): string {
  try {
    return decodeURIComponent(pathname);
  } catch (err) {
    throw new ConfigError(`replica URL path '${pathname}' has an invalid %-escape`, { hint: 'Escape % as %25.', cause: err });
  }
}

/** Returns `url` with any user information removed, for error messages. */
function shown(url: string): string {
  // Up to the last '@': a secret may hold '/' (AWS secret keys often do), which a URL's user info
  // cannot, so the URL does not parse and its "host" would otherwise be shown whole.
  return url.replace(/^(\w+:\/\/).*@/s, '$1***@');
}

/**
 * Splits a replica URL into replica settings: `file:///abs/dir` gives a path; `s3://bucket/prefix`
 * a bucket and key prefix, plus endpoint, region and path style for the provider hosts Litestream
 * v0.3 knows (see `parseS3Host`); `gcs://` and `gs://` a GCS bucket and prefix. Throws ConfigError
 * for other schemes (`abs://` and `sftp://` are not supported by lstream yet), for credentials,
 * query strings or fragments in the URL, and for text that is not a URL.
 */
export function parseReplicaUrl(url: string): Partial<ReplicaConfig> & { type: string } {
  if (!isReplicaUrl(url)) throw new ConfigError(`'${url}' is not a replica URL`, { hint: URL_HINT });
  const scheme = url.slice(0, url.indexOf(':')).toLowerCase();
  if (scheme === 'abs' || scheme === 'sftp') {
    throw new ConfigError(`${scheme} replicas are not supported by lstream yet`, {
      hint: 'Use an s3, gcs or file replica, or keep using Litestream for this database.',
    });
  }
  if (!['file', 's3', 'gcs', 'gs'].includes(scheme)) {
    throw new ConfigError(`unknown replica URL scheme '${scheme}://'`, { hint: URL_HINT });
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // The cause is left out: it carries the whole URL, credentials included.
    throw new ConfigError(`invalid replica URL '${shown(url)}'`, { hint: URL_HINT });
  }
  if (u.username !== '' || u.password !== '') {
    throw new ConfigError('replica URLs may not carry credentials', {
      hint: 'Remove them from the URL and set access-key-id and secret-access-key in the config instead.',
    });
  }
  if (u.search !== '' || u.hash !== '') {
    throw new ConfigError('query strings and fragments in replica URLs are not supported by lstream yet', {
      hint: 'Set region, endpoint and the like as keys of the replica instead.',
    });
  }

  if (scheme === 'file') {
    if (u.host !== '') {
      throw new ConfigError(`file URL '${url}' names a host`, { hint: 'Use three slashes and an absolute path: file:///var/backups/db.' });
    }
    let path: string;
    try {
      path = fileURLToPath(u);
    } catch (err) {
      throw new ConfigError(`invalid file URL '${url}'`, { hint: 'Use three slashes and an absolute path: file:///var/backups/db.', cause: err });
    }
    const clean = posix.normalize(path);
    if (clean === '/') {
      // file:// or file:/// alone: most often a variable that expanded to nothing (file://${DIR}).
      throw new ConfigError(`file URL '${url}' names no directory, only the root directory`, {
        hint: 'Give the replica directory: file:///var/backups/db (check that a $VAR in the URL is set).',
      });
    }
    return { type: 'file', path: clean.replace(/\/+$/, '') };
  }

  const prefix = cleanKeyPrefix(decodePath(u.pathname));
  if (scheme === 's3') {
    const host = parseS3Host(u.hostname, u.port);
    const parts: Partial<ReplicaConfig> & { type: string } = { type: 's3' };
    if (host.bucket !== '') parts.bucket = host.bucket;
    if (prefix !== '') parts.path = prefix;
    if (host.region !== undefined) parts.region = host.region;
    if (host.endpoint !== undefined) parts.endpoint = host.endpoint;
    parts.forcePathStyle = host.forcePathStyle;
    return parts;
  }
  // gcs:// and gs://
  if (u.port !== '') throw new ConfigError(`GCS URL '${url}' has a port`, { hint: 'Use gcs://bucket/prefix.' });
  const parts: Partial<ReplicaConfig> & { type: string } = { type: 'gcs' };
  if (u.hostname !== '') parts.bucket = u.hostname;
  if (prefix !== '') parts.path = prefix;
  return parts;
}
