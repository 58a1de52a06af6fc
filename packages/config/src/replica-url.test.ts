import { describe, expect, it } from 'vitest';
import { ConfigError } from './config-error.js';
import { isReplicaUrl, parseReplicaUrl } from './replica-url.js';

function urlError(url: string): ConfigError {
  try {
    parseReplicaUrl(url);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`expected ${url} to be rejected`);
}

describe('isReplicaUrl', () => {
  it('is true only for scheme:// strings', () => {
    expect(isReplicaUrl('s3://bucket/db')).toBe(true);
    expect(isReplicaUrl('file:///var/backups')).toBe(true);
    expect(isReplicaUrl('my_scheme://x')).toBe(true);
    expect(isReplicaUrl('/var/backups')).toBe(false);
    expect(isReplicaUrl('backups/s3://x')).toBe(false);
    expect(isReplicaUrl('file:/var/backups')).toBe(false);
    expect(isReplicaUrl('C:\\backups')).toBe(false);
  });
});

describe('parseReplicaUrl', () => {
  it('reads file URLs as absolute directories', () => {
    expect(parseReplicaUrl('file:///var/backups/db')).toEqual({ type: 'file', path: '/var/backups/db' });
    expect(parseReplicaUrl('file:///var/backups/./x/../db/')).toEqual({ type: 'file', path: '/var/backups/db' });
    expect(parseReplicaUrl('file:///with%20space')).toEqual({ type: 'file', path: '/with space' });
    expect(parseReplicaUrl('file://localhost/srv')).toEqual({ type: 'file', path: '/srv' });
    expect(urlError('file://otherhost/srv').problem).toContain('names a host');
  });

  it('refuses a file URL of the root directory alone, as an unset variable leaves it (file://${DIR})', () => {
    for (const url of ['file://', 'file:///', 'file:///./']) {
      const e = urlError(url);
      expect(e.problem).toContain('names no directory');
      expect(e.hint).toContain('$VAR');
    }
  });

  it('reads an AWS S3 URL as bucket and key prefix without a leading slash', () => {
    expect(parseReplicaUrl('s3://my-bucket/backups/app.db')).toEqual({ type: 's3', bucket: 'my-bucket', path: 'backups/app.db', forcePathStyle: false });
    expect(parseReplicaUrl('s3://my-bucket')).toEqual({ type: 's3', bucket: 'my-bucket', forcePathStyle: false });
    expect(parseReplicaUrl('s3://my-bucket/')).toEqual({ type: 's3', bucket: 'my-bucket', forcePathStyle: false });
    expect(parseReplicaUrl('s3://my-bucket//a/./b/../c/')).toEqual({ type: 's3', bucket: 'my-bucket', path: 'a/c', forcePathStyle: false });
    expect(parseReplicaUrl('s3://my-bucket/a%20b')).toMatchObject({ path: 'a b' });
    expect(parseReplicaUrl('S3://my-bucket/x')).toMatchObject({ type: 's3', bucket: 'my-bucket' });
  });

  it('reads localhost hosts as a local endpoint over http (MinIO)', () => {
    expect(parseReplicaUrl('s3://bkt.localhost:9000/db')).toEqual({
      type: 's3',
      bucket: 'bkt',
      path: 'db',
      region: 'us-east-1',
      endpoint: 'http://localhost:9000',
      forcePathStyle: true,
    });
    expect(parseReplicaUrl('s3://bkt.localhost/db')).toMatchObject({ bucket: 'bkt', endpoint: 'http://localhost', forcePathStyle: true });
  });

  it('reads Backblaze B2 hosts', () => {
    expect(parseReplicaUrl('s3://bkt.s3.us-west-002.backblazeb2.com/db')).toEqual({
      type: 's3',
      bucket: 'bkt',
      path: 'db',
      region: 'us-west-002',
      endpoint: 'https://s3.us-west-002.backblazeb2.com',
      forcePathStyle: true,
    });
  });

  it('reads Filebase hosts', () => {
    expect(parseReplicaUrl('s3://bkt.s3.filebase.com/db')).toEqual({
      type: 's3',
      bucket: 'bkt',
      path: 'db',
      endpoint: 'https://s3.filebase.com',
      forcePathStyle: true,
    });
  });

  it('reads DigitalOcean Spaces hosts', () => {
    expect(parseReplicaUrl('s3://bkt.nyc3.digitaloceanspaces.com/db')).toEqual({
      type: 's3',
      bucket: 'bkt',
      path: 'db',
      region: 'nyc3',
      endpoint: 'https://nyc3.digitaloceanspaces.com',
      forcePathStyle: true,
    });
  });

  it('reads Scaleway hosts', () => {
    expect(parseReplicaUrl('s3://bkt.s3.fr-par.scw.cloud/db')).toEqual({
      type: 's3',
      bucket: 'bkt',
      path: 'db',
      region: 'fr-par',
      endpoint: 'https://s3.fr-par.scw.cloud',
      forcePathStyle: true,
    });
  });

  it('reads Linode hosts', () => {
    expect(parseReplicaUrl('s3://bkt.us-east-1.linodeobjects.com/db')).toEqual({
      type: 's3',
      bucket: 'bkt',
      path: 'db',
      region: 'us-east-1',
      endpoint: 'https://us-east-1.linodeobjects.com',
      forcePathStyle: true,
    });
  });

  it('keeps a port on a provider endpoint and treats other hosts as AWS buckets', () => {
    expect(parseReplicaUrl('s3://bkt.nyc3.digitaloceanspaces.com:8443/db')).toMatchObject({ endpoint: 'https://nyc3.digitaloceanspaces.com:8443' });
    expect(parseReplicaUrl('s3://bkt.example.com/db')).toEqual({ type: 's3', bucket: 'bkt.example.com', path: 'db', forcePathStyle: false });
  });

  it('reads gcs:// and gs:// as GCS buckets', () => {
    expect(parseReplicaUrl('gcs://bkt/a/b')).toEqual({ type: 'gcs', bucket: 'bkt', path: 'a/b' });
    expect(parseReplicaUrl('gs://bkt/a/b')).toEqual({ type: 'gcs', bucket: 'bkt', path: 'a/b' });
    expect(parseReplicaUrl('gs://bkt')).toEqual({ type: 'gcs', bucket: 'bkt' });
  });

  it('says abs and sftp are not supported yet', () => {
    for (const url of ['abs://account@container/db', 'sftp://user:pw@host/db']) {
      const err = urlError(url);
      expect(err.code).toBe('ECONFIG');
      expect(err.problem).toContain('not supported by lstream yet');
      expect(err.message).not.toContain('pw');
    }
  });

  it('rejects other schemes, plain paths, credentials and query strings', () => {
    expect(urlError('ftp://host/db').problem).toContain('unknown replica URL scheme');
    expect(urlError('/var/backups').problem).toContain('not a replica URL');
    expect(urlError('s3://AKIA:hunter2@bkt/db').message).not.toContain('hunter2');
    // A secret with '/' (as AWS secret keys often have) makes the URL unparseable: still masked.
    const slashed = urlError('s3://AKIAEXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCY@bkt/db');
    expect(slashed.message).not.toMatch(/wJalr|K7MDENG|bPxRfiCY|AKIAEXAMPLE/);
    expect(urlError('s3://bkt/db?token=hunter2').message).not.toContain('hunter2');
    expect(urlError('s3://bkt/db?region=us-east-1').problem).toContain('not supported');
    expect(urlError('s3://bkt/db#frag').problem).toContain('not supported');
    expect(urlError('s3://bkt/%zz').problem).toContain('%-escape');
    expect(urlError('gs://bkt:99/x').problem).toContain('port');
  });
});
