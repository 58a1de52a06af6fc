import { describe, expect, it } from 'vitest';
import { ConfigError } from './config-error.js';
import { replicaConfigFromUrl } from './replica-config-from-url.js';

describe('replicaConfigFromUrl', () => {
  it('builds a replica config from a URL alone', () => {
    expect(replicaConfigFromUrl('s3://bkt.localhost:9000/app')).toEqual({
      type: 's3',
      name: 's3',
      url: 's3://bkt.localhost:9000/app',
      bucket: 'bkt',
      path: 'app',
      region: 'us-east-1',
      endpoint: 'http://localhost:9000',
      forcePathStyle: true,
      skipVerify: false,
      options: {},
    });
    expect(replicaConfigFromUrl('file:///var/backups/app')).toEqual({
      type: 'file',
      name: 'file',
      url: 'file:///var/backups/app',
      path: '/var/backups/app',
      options: {},
    });
  });

  it('takes the name and intervals from the options', () => {
    expect(replicaConfigFromUrl('gs://bkt/app', { name: 'offsite', syncIntervalMs: 5_000 })).toEqual({
      type: 'gcs',
      name: 'offsite',
      url: 'gs://bkt/app',
      bucket: 'bkt',
      path: 'app',
      options: { syncIntervalMs: 5_000 },
    });
  });

  it('rejects plain paths and URLs lstream cannot use', () => {
    for (const url of ['/var/backups', 's3:///no-bucket', 'sftp://host/x', 'ftp://host/x']) {
      expect(() => replicaConfigFromUrl(url), url).toThrow(ConfigError);
    }
  });
});
