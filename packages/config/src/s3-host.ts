/** Holds what an S3 URL's host says about the bucket and the endpoint to use. */
export interface S3HostParts {
  bucket: string;
  region?: string;
  endpoint?: string;
  forcePathStyle: boolean;
}

interface Provider {
  pattern: RegExp;
  /** Endpoint host (without scheme or port) and region for the match. */
  endpoint: (m: RegExpExecArray) => { host: string; region?: string };
  scheme: 'http' | 'https';
}

// The host rules of Litestream v0.3 (s3.ParseHost), checked in this order.
const PROVIDERS: Provider[] = [
  { pattern: /^(?:(.+)\.)?localhost$/, endpoint: () => ({ host: 'localhost', region: 'us-east-1' }), scheme: 'http' },
  {
    pattern: /^(?:(.+)\.)?s3\.([^.]+)\.backblazeb2\.com$/,
    endpoint: (m) => ({ host: `s3.${m[2] ?? ''}.backblazeb2.com`, region: m[2] ?? '' }),
    scheme: 'https',
  },
  { pattern: /^(?:(.+)\.)?s3\.filebase\.com$/, endpoint: () => ({ host: 's3.filebase.com' }), scheme: 'https' },
  {
    pattern: /^(?:(.+)\.)?([^.]+)\.digitaloceanspaces\.com$/,
    endpoint: (m) => ({ host: `${m[2] ?? ''}.digitaloceanspaces.com`, region: m[2] ?? '' }),
    scheme: 'https',
  },
  {
    pattern: /^(?:(.+)\.)?s3\.([^.]+)\.scw\.cloud$/,
    endpoint: (m) => ({ host: `s3.${m[2] ?? ''}.scw.cloud`, region: m[2] ?? '' }),
    scheme: 'https',
  },
  {
    pattern: /^(?:(.+)\.)?([^.]+)\.linodeobjects\.com$/,
    endpoint: (m) => ({ host: `${m[2] ?? ''}.linodeobjects.com`, region: m[2] ?? '' }),
    scheme: 'https',
  },
];

/**
 * Splits the host of an `s3://` URL the way Litestream v0.3 does: `bkt.localhost:9000` (MinIO and
 * other local servers), Backblaze B2, Filebase, DigitalOcean Spaces, Scaleway and Linode hosts name
 * a bucket on that provider's endpoint with path-style requests; any other host is an AWS bucket.
 */
export function parseS3Host(hostname: string, port = ''): S3HostParts {
  for (const p of PROVIDERS) {
    const m = p.pattern.exec(hostname);
    if (!m) continue;
    const { host, region } = p.endpoint(m);
    const parts: S3HostParts = {
      bucket: m[1] ?? '',
      endpoint: `${p.scheme}://${host}${port ? `:${port}` : ''}`,
      forcePathStyle: true,
    };
    if (region) parts.region = region;
    return parts;
  }
  return { bucket: hostname, forcePathStyle: false };
}
