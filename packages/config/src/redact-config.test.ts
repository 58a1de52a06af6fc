import { describe, expect, it } from 'vitest';
import { parseConfig } from './parse-config.js';
import { redactConfig } from './redact-config.js';

describe('redactConfig', () => {
  it('masks every credential in a deep copy and leaves the original alone', () => {
    const config = parseConfig(
      `access-key-id: AKIAGLOBAL
secret-access-key: global-secret
dbs:
  - path: /a
    replicas:
      - url: s3://bkt/a
      - url: s3://bkt/a2
        name: own
        access-key-id: AKIAOWN
        secret-access-key: own-secret
  - path: /b
    replicas:
      - url: gs://bkt/b
`,
      { env: {} },
    );
    const redacted = redactConfig(config);
    const text = JSON.stringify(redacted);
    for (const secret of ['AKIAGLOBAL', 'global-secret', 'AKIAOWN', 'own-secret']) expect(text).not.toContain(secret);
    expect(redacted.dbs.flatMap((d) => d.replicas.map((r) => [r.accessKeyId, r.secretAccessKey]))).toEqual([
      ['***', '***'],
      ['***', '***'],
      ['***', '***'],
    ]);
    expect(config.dbs[0]?.replicas[1]?.secretAccessKey).toBe('own-secret');
    expect(redacted.dbs[0]?.replicas[0]).not.toBe(config.dbs[0]?.replicas[0]);
    expect({ ...redacted, dbs: [] }).toEqual({ ...config, dbs: [] });
  });

  it('does not invent credentials where there were none', () => {
    const config = parseConfig('dbs: [{path: /a, replicas: [{path: /r}]}]', { env: {} });
    const r = redactConfig(config).dbs[0]?.replicas[0];
    expect(r?.accessKeyId).toBeUndefined();
    expect(r?.secretAccessKey).toBeUndefined();
  });
});
