import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './config-error.js';
import { parseConfig } from './parse-config.js';

/** Parses `text` expecting a ConfigError, and returns it. */
function configError(text: string, opts: Parameters<typeof parseConfig>[1] = {}): ConfigError {
  try {
    parseConfig(text, { cwd: '/srv', env: {}, ...opts });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect(ConfigError.isInstance(err)).toBe(true);
    expect((err as ConfigError).code).toBe('ECONFIG');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

const LITESTREAM_EXAMPLE = `# Litestream v0.3 example configuration
addr: ":9090"
exec: "node server.js"
access-key-id: AKIAGLOBAL
secret-access-key: global-secret

logging:
  level: debug
  type: json
  stderr: true

dbs:
  - path: /var/lib/app/app.db
    meta-path: /var/lib/app/.app.db-litestream
    monitor-interval: 1s
    checkpoint-interval: 1m
    busy-timeout: 5s
    min-checkpoint-page-count: 1000
    max-checkpoint-page-count: 10000
    replicas:
      - url: s3://app-backups/app.db
        retention: 72h
        retention-check-interval: 1h
        sync-interval: 10s
        snapshot-interval: 24h
        validation-interval: 6h
      - name: local
        type: file
        path: /backups/app
        sync-interval: 0

  - path: ~/notes.db
    truncate-page-count: 500000
    max-shadow-wal-size: 512MB
    replicas:
      - type: s3
        bucket: notes
        path: /team/notes.db/
        region: eu-west-1
        endpoint: https://minio.internal:9000
        skip-verify: true
        access-key-id: AKIAOWN
        secret-access-key: own-secret
      - url: gcs://notes-gcs/backups/notes
        snapshot-interval: 1h30m
      - url: s3://notes.s3.us-west-002.backblazeb2.com/notes
        name: b2
        force-path-style: false
`;

describe('parseConfig', () => {
  it('parses a full Litestream v0.3 config to the expected object', () => {
    const config = parseConfig(LITESTREAM_EXAMPLE, { file: '/etc/lstream.yml', env: {} });
    expect(config).toEqual({
      addr: ':9090',
      exec: 'node server.js',
      file: '/etc/lstream.yml',
      logging: { level: 'debug', type: 'json', stderr: true },
      dbs: [
        {
          path: '/var/lib/app/app.db',
          line: 13,
          options: {
            metaPath: '/var/lib/app/.app.db-litestream',
            monitorIntervalMs: 1_000,
            checkpointIntervalMs: 60_000,
            busyTimeoutMs: 5_000,
            minCheckpointPageCount: 1000,
            maxCheckpointPageCount: 10000,
          },
          replicas: [
            {
              type: 's3',
              name: 's3',
              url: 's3://app-backups/app.db',
              bucket: 'app-backups',
              path: 'app.db',
              forcePathStyle: false,
              skipVerify: false,
              accessKeyId: 'AKIAGLOBAL',
              secretAccessKey: 'global-secret',
              line: 21,
              options: {
                retentionMs: 72 * 3_600_000,
                retentionCheckIntervalMs: 3_600_000,
                syncIntervalMs: 10_000,
                snapshotIntervalMs: 24 * 3_600_000,
                validationIntervalMs: 6 * 3_600_000,
              },
            },
            {
              type: 'file',
              name: 'local',
              path: '/backups/app',
              accessKeyId: 'AKIAGLOBAL',
              secretAccessKey: 'global-secret',
              line: 27,
              options: { syncIntervalMs: 0 },
            },
          ],
        },
        {
          path: join(homedir(), 'notes.db'),
          line: 32,
          options: { truncatePageCount: 500_000, maxShadowWalBytes: 512_000_000 },
          replicas: [
            {
              type: 's3',
              name: 's3',
              bucket: 'notes',
              path: 'team/notes.db',
              region: 'eu-west-1',
              endpoint: 'https://minio.internal:9000',
              forcePathStyle: true, // an explicit endpoint implies path style, as in Litestream
              skipVerify: true,
              accessKeyId: 'AKIAOWN',
              secretAccessKey: 'own-secret',
              line: 36,
              options: {},
            },
            {
              type: 'gcs',
              name: 'gcs',
              url: 'gcs://notes-gcs/backups/notes',
              bucket: 'notes-gcs',
              path: 'backups/notes',
              accessKeyId: 'AKIAGLOBAL',
              secretAccessKey: 'global-secret',
              line: 44,
              options: { snapshotIntervalMs: 90 * 60_000 },
            },
            {
              type: 's3',
              name: 'b2',
              url: 's3://notes.s3.us-west-002.backblazeb2.com/notes',
              bucket: 'notes',
              path: 'notes',
              region: 'us-west-002',
              endpoint: 'https://s3.us-west-002.backblazeb2.com',
              forcePathStyle: false, // set explicitly: the URL only fills blank fields
              skipVerify: false,
              accessKeyId: 'AKIAGLOBAL',
              secretAccessKey: 'global-secret',
              line: 46,
              options: {},
            },
          ],
        },
      ],
    });
  });

  it('applies defaults to a minimal config', () => {
    const config = parseConfig('dbs:\n  - path: /data/db\n    replicas:\n      - path: /backup\n', { env: {} });
    expect(config).toEqual({
      logging: { level: 'info', type: 'text', stderr: false },
      dbs: [{ path: '/data/db', line: 2, options: {}, replicas: [{ type: 'file', name: 'file', path: '/backup', line: 4, options: {} }] }],
    });
  });

  it('accepts an empty file and a config without dbs', () => {
    expect(parseConfig('', { env: {} })).toEqual({ logging: { level: 'info', type: 'text', stderr: false }, dbs: [] });
    expect(parseConfig('# nothing\nlogging:\n  level: WARNING\n', { env: {} }).logging.level).toBe('warn');
  });

  it('resolves relative db, meta and file replica paths against cwd, by default the working directory (as Litestream)', () => {
    const text = 'dbs:\n  - path: data/app.db\n    meta-path: ./meta\n    replicas:\n      - url: file:///abs/replica\n      - name: rel\n        path: ../replica\n';
    const a = parseConfig(text, { cwd: '/srv/app', env: {} });
    expect(a.dbs[0]?.path).toBe('/srv/app/data/app.db');
    expect(a.dbs[0]?.options.metaPath).toBe('/srv/app/meta');
    expect(a.dbs[0]?.replicas.map((r) => r.path)).toEqual(['/abs/replica', '/srv/replica']);
    // Not the config file's directory: a litestream.yml in /etc with `path: data/app.db`, run from the
    // app's directory, names the app's database.
    const b = parseConfig(text, { file: '/etc/lstream/lstream.yml', env: {} });
    expect(b.dbs[0]?.path).toBe(join(process.cwd(), 'data/app.db'));
    expect(parseConfig('dbs:\n  - path: "~"\n    replicas: [{path: ~/bk}]\n', { env: {} }).dbs[0]).toMatchObject({
      path: homedir(),
      replicas: [{ path: join(homedir(), 'bk') }],
    });
  });

  it('reads durations in Go syntax and byte sizes with units', () => {
    const config = parseConfig(
      `dbs:
  - path: /db
    monitor-interval: 250ms
    checkpoint-interval: 1h30m
    busy-timeout: "0s"
    max-shadow-wal-size: 1GiB
    replicas:
      - path: /r
        sync-interval: 1m30s
        snapshot-interval: 0
        retention: 1.5h
        retention-check-interval: 2h45m30s
        validation-interval: 1500us
`,
      { env: {} },
    );
    expect(config.dbs[0]?.options).toEqual({ monitorIntervalMs: 250, checkpointIntervalMs: 5_400_000, busyTimeoutMs: 0, maxShadowWalBytes: 1024 ** 3 });
    expect(config.dbs[0]?.replicas[0]?.options).toEqual({
      syncIntervalMs: 90_000,
      snapshotIntervalMs: 0,
      retentionMs: 5_400_000,
      retentionCheckIntervalMs: 2 * 3_600_000 + 45 * 60_000 + 30_000,
      validationIntervalMs: 2,
    });
    expect(parseConfig('dbs: [{path: /d, max-shadow-wal-size: 4096, replicas: [{path: /r}]}]', { env: {} }).dbs[0]?.options).toEqual({
      maxShadowWalBytes: 4096,
    });
  });

  it('accepts YAML 1.1 booleans and numbers as strings, as yaml.v2 does', () => {
    const config = parseConfig(
      'logging:\n  stderr: yes\ndbs:\n  - path: /d\n    replicas:\n      - type: s3\n        bucket: 2024\n        force-path-style: on\n        skip-verify: off\n',
      { env: {} },
    );
    expect(config.logging.stderr).toBe(true);
    expect(config.dbs[0]?.replicas[0]).toMatchObject({ bucket: '2024', forcePathStyle: true, skipVerify: false });
  });

  it('supports anchors, aliases and << merge keys', () => {
    const config = parseConfig(
      `dbs:
  - path: /a
    replicas:
      - &s3 { type: s3, bucket: shared, sync-interval: 5s }
  - path: /b
    replicas:
      - <<: *s3
        path: b
        sync-interval: 1s
  - path: /c
    replicas: [*s3]
`,
      { env: {} },
    );
    expect(config.dbs[0]?.replicas[0]).toMatchObject({ bucket: 'shared', options: { syncIntervalMs: 5_000 } });
    // Keys written beside the merge win over the merged ones.
    expect(config.dbs[1]?.replicas[0]).toMatchObject({ bucket: 'shared', path: 'b', options: { syncIntervalMs: 1_000 } });
    expect(config.dbs[2]?.replicas[0]).toMatchObject({ bucket: 'shared', options: { syncIntervalMs: 5_000 } });
  });

  it('uses the URL scheme as the type, and the type as the default name', () => {
    const config = parseConfig(
      'dbs:\n  - path: /d\n    replicas:\n      - url: gs://bkt/p\n      - url: file:///backups/d/\n      - { type: gcs, bucket: b2, name: second }\n',
      { env: {} },
    );
    expect(config.dbs[0]?.replicas.map((r) => [r.type, r.name, r.bucket, r.path])).toEqual([
      ['gcs', 'gcs', 'bkt', 'p'],
      ['file', 'file', undefined, '/backups/d'],
      ['gcs', 'second', 'b2', undefined],
    ]);
  });
});

describe('parseConfig environment expansion', () => {
  const text = 'dbs:\n  - path: ${DB_DIR}/app.db\n    replicas:\n      - url: s3://$BUCKET/app\n        access-key-id: $KEY\n        secret-access-key: $SECRET\n';

  it('expands $VAR and ${VAR} from the given env; unset variables become empty', () => {
    const config = parseConfig(text, { env: { DB_DIR: '/data', BUCKET: 'bkt', KEY: 'k3y', SECRET: 's3cr3t' } });
    expect(config.dbs[0]?.path).toBe('/data/app.db');
    expect(config.dbs[0]?.replicas[0]).toMatchObject({ bucket: 'bkt', path: 'app', accessKeyId: 'k3y', secretAccessKey: 's3cr3t' });
    const unset = parseConfig(text, { env: { BUCKET: 'bkt' } });
    expect(unset.dbs[0]?.path).toBe('/app.db');
    expect(unset.dbs[0]?.replicas[0]?.secretAccessKey).toBeUndefined();
  });

  it('leaves the text alone with expandEnv: false', () => {
    const config = parseConfig(text, { expandEnv: false, cwd: '/srv', env: { DB_DIR: '/data', BUCKET: 'bkt' } });
    expect(config.dbs[0]?.path).toBe('/srv/${DB_DIR}/app.db');
    expect(config.dbs[0]?.replicas[0]).toMatchObject({ bucket: '$BUCKET', secretAccessKey: '$SECRET' });
  });

  it('defaults to process.env', () => {
    const key = `LSTREAM_TEST_${process.pid}`;
    process.env[key] = '/from-process-env';
    try {
      expect(parseConfig(`dbs: [{path: $${key}/db, replicas: [{path: /r}]}]`).dbs[0]?.path).toBe('/from-process-env/db');
    } finally {
      delete process.env[key];
    }
  });

  it('reports lines of the original file when a value spans lines', () => {
    const err = configError('addr: "$MULTI"\ndbs:\n  - path: /d\n    bogus: 1\n', { env: { MULTI: 'a\n  b\n  c' } });
    expect(err.line).toBe(4);
  });
});

describe('parseConfig errors', () => {
  it('checks addr is host:port, naming it and its line', () => {
    const dbs = 'dbs:\n  - path: /d\n    replicas: [{path: /r}]\n';
    for (const bad of ['localhost', '127.0.0.1:99999', '9090', 'a:b']) {
      const err = configError(`${dbs}addr: "${bad}"\n`);
      expect(err, bad).toMatchObject({ key: 'addr', line: 4 });
    }
    for (const good of [':9090', '127.0.0.1:0', '[::1]:9090', 'localhost:80']) expect(parseConfig(`addr: "${good}"\n${dbs}`, { cwd: '/srv', env: {} }).addr).toBe(good);
  });

  it('names unknown keys with their path and line', () => {
    expect(configError('addr: x\nfoo: 1\n')).toMatchObject({ key: 'foo', line: 2 });
    const db = configError('dbs:\n  - path: /d\n    replicas: [{path: /r}]\n    foo: 1\n');
    expect(db).toMatchObject({ key: 'dbs[0].foo', line: 4 });
    expect(db.message).toContain("unknown key 'foo' in dbs[0]");
    expect(configError('dbs:\n  - path: /d\n    replicas:\n      - path: /r\n      - path: /s\n        sync_interval: 1s\n')).toMatchObject({
      key: 'dbs[0].replicas[1].sync_interval',
      line: 6,
      hint: "Did you mean 'sync-interval'?",
    });
    expect(configError('logging:\n  colour: red\n')).toMatchObject({ key: 'logging.colour', line: 2 });
    expect(configError('dbs:\n  - path: /d\n    replica:\n      url: s3://b/p\n')).toMatchObject({ key: 'dbs[0].replica', line: 3 });
  });

  it('places the file in the error', () => {
    const err = configError('foo: 1\n', { file: '/etc/lstream.yml' });
    expect(err).toMatchObject({ file: '/etc/lstream.yml', line: 1, key: 'foo' });
    expect(err.message.startsWith('/etc/lstream.yml:1: foo: ')).toBe(true);
  });

  it('refuses two file replicas in one directory, in one database or across two, naming both', () => {
    const same = configError('dbs:\n  - path: /d\n    replicas:\n      - path: /r\n      - name: two\n        url: file:///r\n', { file: '/etc/l.yml' });
    expect(same).toMatchObject({ file: '/etc/l.yml', key: 'dbs[0].replicas[1].url', line: 6 });
    expect(same.message).toContain('replica path /r is already used by another replica of this database (dbs[0].replicas[0])');
    const across = configError('dbs:\n  - path: /a\n    replicas: [{path: /r}]\n  - path: /b\n    replicas: [{path: /x/../r}]\n');
    expect(across).toMatchObject({ key: 'dbs[1].replicas[0].path', line: 5 });
    expect(across.message).toContain('replica path /r is already used by database /a (dbs[0].replicas[0])');
    // Different directories, and one directory for S3 and file replicas, are fine.
    expect(parseConfig('dbs:\n  - path: /a\n    replicas: [{path: /r}, {name: s, type: s3, bucket: b, path: /r}]\n  - path: /b\n    replicas: [{path: /r2}]\n', { env: {} }).dbs).toHaveLength(2);
  });

  it('rejects bad durations', () => {
    const at = (v: string) => configError(`dbs:\n  - path: /d\n    replicas:\n      - path: /r\n        sync-interval: ${v}\n`);
    for (const v of ['10', '1.5', 'abc', '10 s', '1d', '-1s', '1s2', '[1s]', '{a: 1}']) {
      expect(at(v), v).toMatchObject({ key: 'dbs[0].replicas[0].sync-interval', line: 5 });
    }
    expect(configError('dbs:\n  - path: /d\n    monitor-interval: 5\n    replicas: [{path: /r}]\n')).toMatchObject({
      key: 'dbs[0].monitor-interval',
      line: 3,
    });
  });

  it('rejects values of the wrong type or range', () => {
    const db = (line: string) => configError(`dbs:\n  - path: /d\n    ${line}\n    replicas: [{path: /r}]\n`);
    expect(db('min-checkpoint-page-count: -1')).toMatchObject({ key: 'dbs[0].min-checkpoint-page-count', line: 3 });
    expect(db('max-checkpoint-page-count: 1.5')).toMatchObject({ key: 'dbs[0].max-checkpoint-page-count', line: 3 });
    expect(db('truncate-page-count: lots')).toMatchObject({ key: 'dbs[0].truncate-page-count', line: 3 });
    expect(db('max-shadow-wal-size: 12 parsecs')).toMatchObject({ key: 'dbs[0].max-shadow-wal-size', line: 3 });
    expect(db('max-shadow-wal-size: 0')).toMatchObject({ key: 'dbs[0].max-shadow-wal-size', line: 3 });
    expect(db('meta-path: [a, b]')).toMatchObject({ key: 'dbs[0].meta-path', line: 3 });
    // Values the engine cannot run with are refused here, with their line, not when replication starts.
    expect(db('min-checkpoint-page-count: 0')).toMatchObject({ key: 'dbs[0].min-checkpoint-page-count', line: 3 });
    expect(db('monitor-interval: 0s')).toMatchObject({ key: 'dbs[0].monitor-interval', line: 3, problem: 'must be above 0' });
    expect(db('monitor-interval: 0').message).toContain('in Litestream, 0 turned replication off');
    expect(configError('dbs:\n  - path: /d\n    replicas:\n      - path: /r\n        retention-check-interval: 0s\n')).toMatchObject({
      key: 'dbs[0].replicas[0].retention-check-interval',
      line: 5,
    });
    expect(db('min-checkpoint-page-count: 100\n    max-checkpoint-page-count: 10')).toMatchObject({ key: 'dbs[0].max-checkpoint-page-count', line: 4 });
    expect(configError('dbs:\n  - path: /d\n    replicas: [{type: s3, bucket: b, skip-verify: maybe}]\n')).toMatchObject({
      key: 'dbs[0].replicas[0].skip-verify',
      line: 3,
    });
    expect(configError('logging:\n  level: loud\n')).toMatchObject({ key: 'logging.level', line: 2 });
    expect(configError('logging:\n  type: xml\n')).toMatchObject({ key: 'logging.type', line: 2 });
    expect(configError('logging: verbose\n')).toMatchObject({ key: 'logging', line: 1 });
    expect(configError('dbs:\n  path: /d\n')).toMatchObject({ key: 'dbs', line: 2 });
    expect(configError('dbs:\n  - /d\n')).toMatchObject({ key: 'dbs[0]', line: 2 });
    expect(configError('- a\n- b\n')).toMatchObject({ line: 1 });
  });

  it('reports YAML syntax errors with their line', () => {
    const err = configError('addr: x\ndbs:\n  - path: /d\n    replicas: [\n  bad: ]\n');
    expect(err.line).toBeGreaterThanOrEqual(4);
    expect(err.key).toBeUndefined();
    expect(configError('addr: "unterminated\n').line).toBeTypeOf('number');
    expect(configError('addr: x\naddr: y\n')).toMatchObject({ line: 2 });
    expect(configError('dbs: *nowhere\n').line).toBe(1);
  });

  it('requires a db path, and accepts a database without replicas as Litestream does', () => {
    expect(configError('dbs:\n  - replicas: [{path: /r}]\n')).toMatchObject({ key: 'dbs[0].path', line: 2 });
    // A bare ~ is YAML's null, so it reads as no path; quote it to mean the home directory.
    expect(configError('dbs:\n  - path: ~\n    replicas: [{path: /r}]\n')).toMatchObject({ key: 'dbs[0].path', line: 2 });
    for (const text of ['dbs:\n  - path: /d\n', 'dbs:\n  - path: /d\n    replicas: []\n']) {
      expect(parseConfig(text, { cwd: '/srv', env: {} }).dbs[0]!.replicas).toEqual([]);
    }
  });

  it('rejects the same database twice', () => {
    const err = configError('dbs:\n  - path: /d/app.db\n    replicas: [{path: /r}]\n  - path: /d/../d/app.db\n    replicas: [{path: /s}]\n');
    expect(err).toMatchObject({ key: 'dbs[1].path', line: 4 });
  });

  it('rejects duplicate replica names within a database', () => {
    expect(configError('dbs:\n  - path: /d\n    replicas:\n      - url: s3://a/x\n      - url: s3://b/y\n')).toMatchObject({
      key: 'dbs[0].replicas[1]',
      line: 5,
    });
    expect(configError('dbs:\n  - path: /d\n    replicas:\n      - {path: /r, name: n}\n      - url: s3://b/y\n        name: n\n')).toMatchObject({
      key: 'dbs[0].replicas[1].name',
      line: 6,
    });
    // The same name in two databases is fine.
    expect(parseConfig('dbs:\n  - {path: /a, replicas: [{path: /r}]}\n  - {path: /b, replicas: [{path: /s}]}\n', { env: {} }).dbs).toHaveLength(2);
  });

  it('rejects url combined with path or bucket, naming the key', () => {
    expect(configError('dbs:\n  - path: /d\n    replicas:\n      - url: s3://b/p\n        path: other\n')).toMatchObject({
      key: 'dbs[0].replicas[0].path',
      line: 5,
    });
    expect(configError('dbs:\n  - path: /d\n    replicas:\n      - url: s3://b/p\n        bucket: other\n')).toMatchObject({
      key: 'dbs[0].replicas[0].bucket',
      line: 5,
    });
  });

  it('rejects bad URLs and replica settings at their key', () => {
    const rep = (body: string) => configError(`dbs:\n  - path: /d\n    replicas:\n      - ${body}\n`);
    expect(rep('url: ftp://host/x')).toMatchObject({ key: 'dbs[0].replicas[0].url', line: 4 });
    expect(rep('url: s3://key:secret@bkt/x')).toMatchObject({ key: 'dbs[0].replicas[0].url', line: 4 });
    expect(rep('url: s3:///no-bucket')).toMatchObject({ key: 'dbs[0].replicas[0].url', line: 4 });
    expect(rep('{type: s3, path: x}')).toMatchObject({ key: 'dbs[0].replicas[0].bucket', line: 4 });
    expect(rep('{type: file}')).toMatchObject({ key: 'dbs[0].replicas[0].path', line: 4 });
    expect(rep('{path: s3://bkt/db}')).toMatchObject({ key: 'dbs[0].replicas[0].path', line: 4 });
    expect(rep('{type: ftp, path: /x}')).toMatchObject({ key: 'dbs[0].replicas[0].type', line: 4 });
    expect(rep('{url: s3://b/p, type: gcs}')).toMatchObject({ key: 'dbs[0].replicas[0].type', line: 4 });
    expect(rep('{bucket: b, path: p}')).toMatchObject({ key: 'dbs[0].replicas[0].bucket', line: 4 });
    expect(rep('{url: gcs://b/p, region: us-east-1}')).toMatchObject({ key: 'dbs[0].replicas[0].region', line: 4 });
    expect(rep('s3://bkt/db')).toMatchObject({ key: 'dbs[0].replicas[0]', line: 4 });
    // Half a pair of S3 credentials (the S3 client would refuse it at start, without file or line).
    expect(rep('{url: s3://b/p, secret-access-key: s}')).toMatchObject({ key: 'dbs[0].replicas[0].access-key-id', line: 4 });
    expect(rep('{url: s3://b/p, access-key-id: k}')).toMatchObject({ key: 'dbs[0].replicas[0].secret-access-key', line: 4 });
    expect(configError('access-key-id: k\ndbs:\n  - path: /d\n    replicas:\n      - url: s3://b/p\n')).toMatchObject({
      key: 'dbs[0].replicas[0].secret-access-key',
      line: 5,
    });
  });

  it('says age encryption is not supported yet', () => {
    const err = configError(
      'dbs:\n  - path: /d\n    replicas:\n      - url: s3://b/p\n        age:\n          identities: [AGE-SECRET-KEY-1]\n',
    );
    expect(err).toMatchObject({ key: 'dbs[0].replicas[0].age', line: 5 });
    expect(err.problem).toContain('not supported by lstream yet');
  });

  it('says abs and sftp replicas are not supported yet', () => {
    const rep = (body: string) => configError(`dbs:\n  - path: /d\n    replicas:\n      - ${body}\n`);
    for (const [body, key] of [
      ['url: abs://account@container/p', 'url'],
      ['url: sftp://user@host/p', 'url'],
      ['{type: abs, bucket: c}', 'type'],
      ['{type: sftp, path: /p}', 'type'],
      ['{url: s3://b/p, account-name: acct}', 'account-name'],
      ['{url: s3://b/p, account-key: k}', 'account-key'],
      ['{type: file, path: /p, host: h}', 'host'],
      ['{type: file, path: /p, user: u}', 'user'],
      ['{type: file, path: /p, password: pw}', 'password'],
      ['{type: file, path: /p, key-path: /k}', 'key-path'],
    ] as const) {
      const err = rep(body);
      expect(err, body).toMatchObject({ key: `dbs[0].replicas[0].${key}`, line: 4 });
      expect(err.problem, body).toContain('not supported by lstream yet');
    }
  });

  it('never puts the secret of a URL in the error', () => {
    const err = configError('dbs:\n  - path: /d\n    replicas:\n      - url: s3://AKIA:topsecret@bkt/x\n');
    expect(err.message).not.toContain('topsecret');
  });
});

describe('parseConfig lstream-server keys', () => {
  it('reads the server token and database names', () => {
    const config = parseConfig(
      'addr: ":9090"\nserver:\n  token: t0ps3cret-token\ndbs:\n  - name: app\n    path: /d/app.db\n    replicas: [{path: /r}]\n  - path: /d/other.db\n    replicas: [{path: /s}]\n',
      { env: {} },
    );
    expect(config.server).toEqual({ token: 't0ps3cret-token' });
    expect(config.dbs.map((d) => d.name)).toEqual(['app', undefined]);
  });

  it('trims the server token, as a bearer token is compared without surrounding whitespace', () => {
    const config = parseConfig('server:\n  token: "  t0ps3cret-token\\n"\n', { env: {} });
    expect(config.server).toEqual({ token: 't0ps3cret-token' });
  });

  it('rejects unknown server keys, an empty token, bad and duplicate database names at their key and line', () => {
    expect(configError('server:\n  tokn: x\n')).toMatchObject({ key: 'server.tokn', line: 2, hint: "Did you mean 'token'?" });
    expect(configError('server:\n  token: "  "\n')).toMatchObject({ key: 'server.token', line: 2 });
    expect(configError('server:\n  token: "abc def-1234"\n')).toMatchObject({ key: 'server.token', line: 2 });
    expect(configError('dbs:\n  - path: /d\n    name: a/b\n    replicas: [{path: /r}]\n')).toMatchObject({ key: 'dbs[0].name', line: 3 });
    expect(
      configError('dbs:\n  - {path: /a, name: app, replicas: [{path: /r}]}\n  - path: /b\n    name: app\n    replicas: [{path: /s}]\n'),
    ).toMatchObject({ key: 'dbs[1].name', line: 4 });
  });
});
