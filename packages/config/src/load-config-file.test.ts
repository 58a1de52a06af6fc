import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from './config-error.js';
import { loadConfigFile } from './load-config-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lstream-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadConfigFile', () => {
  it('reads a file, resolving relative paths against the working directory (as Litestream) and expanding env', async () => {
    const file = join(dir, 'lstream.yml');
    await writeFile(file, 'dbs:\n  - path: app.db\n    replicas:\n      - path: $REPLICA_DIR\n');
    const config = await loadConfigFile(file, { env: { REPLICA_DIR: 'replica' }, cwd: dir });
    expect(config).toEqual({
      file,
      logging: { level: 'info', type: 'text', stderr: false },
      dbs: [{ path: join(dir, 'app.db'), line: 2, options: {}, replicas: [{ type: 'file', name: 'file', path: join(dir, 'replica'), line: 4, options: {} }] }],
    });
    const raw = await loadConfigFile(file, { expandEnv: false });
    expect(raw.dbs[0]?.path).toBe(join(process.cwd(), 'app.db'));
    expect(raw.dbs[0]?.replicas[0]?.path).toBe(join(process.cwd(), '$REPLICA_DIR'));
  });

  it('puts the file path in parse errors', async () => {
    const file = join(dir, 'bad.yml');
    await writeFile(file, 'dbs:\n  - path: app.db\n    replicas:\n      - path: /r\n        sync-interval: 10\n');
    const err = await loadConfigFile(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toMatchObject({ file, line: 5, key: 'dbs[0].replicas[0].sync-interval' });
  });

  it('says when the file does not exist', async () => {
    const file = join(dir, 'missing.yml');
    const err = await loadConfigFile(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err).toMatchObject({ code: 'ECONFIG', problem: `config file not found: ${file}` });
    expect((err as ConfigError).hint).toContain('-config');
  });

  it('says when the path cannot be read', async () => {
    const sub = join(dir, 'a-directory.yml');
    await mkdir(sub);
    const err = await loadConfigFile(sub).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problem).toContain('EISDIR');
    if (process.getuid?.() !== 0) {
      const locked = join(dir, 'locked.yml');
      await writeFile(locked, 'dbs: []\n');
      await chmod(locked, 0o000);
      await expect(loadConfigFile(locked)).rejects.toBeInstanceOf(ConfigError);
    }
  });
});
