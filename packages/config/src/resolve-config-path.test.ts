import { beforeEach, describe, expect, it, vi } from 'vitest';

// The /etc fallbacks are looked up with existsSync; tests decide which of them "exist".
const existing = new Set<string>();
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return { ...fs, existsSync: (p: string) => existing.has(p) };
});

const { resolveConfigPath } = await import('./resolve-config-path.js');

describe('resolveConfigPath', () => {
  beforeEach(() => existing.clear());

  it('prefers the flag, then $LSTREAM_CONFIG, then $LITESTREAM_CONFIG', () => {
    existing.add('/etc/lstream.yml').add('/etc/litestream.yml');
    const env = { LSTREAM_CONFIG: '/env/lstream.yml', LITESTREAM_CONFIG: '/env/litestream.yml' };
    expect(resolveConfigPath('/flag.yml', env)).toEqual({ path: '/flag.yml', explicit: true });
    expect(resolveConfigPath(undefined, env)).toEqual({ path: '/env/lstream.yml', explicit: true });
    expect(resolveConfigPath(undefined, { LITESTREAM_CONFIG: '/env/litestream.yml' })).toEqual({ path: '/env/litestream.yml', explicit: true });
  });

  it('ignores empty values', () => {
    expect(resolveConfigPath('', { LSTREAM_CONFIG: '', LITESTREAM_CONFIG: '/env/litestream.yml' })).toEqual({
      path: '/env/litestream.yml',
      explicit: true,
    });
  });

  it('falls back to /etc/lstream.yml, then /etc/litestream.yml, only when they exist', () => {
    expect(resolveConfigPath(undefined, {})).toBeUndefined();
    existing.add('/etc/litestream.yml');
    expect(resolveConfigPath(undefined, {})).toEqual({ path: '/etc/litestream.yml', explicit: false });
    existing.add('/etc/lstream.yml');
    expect(resolveConfigPath(undefined, {})).toEqual({ path: '/etc/lstream.yml', explicit: false });
  });

  it('reads process.env by default', () => {
    const saved = { a: process.env.LSTREAM_CONFIG, b: process.env.LITESTREAM_CONFIG };
    try {
      delete process.env.LSTREAM_CONFIG;
      process.env.LITESTREAM_CONFIG = '/from/process.yml';
      expect(resolveConfigPath(undefined)).toEqual({ path: '/from/process.yml', explicit: true });
    } finally {
      if (saved.a === undefined) delete process.env.LSTREAM_CONFIG;
      else process.env.LSTREAM_CONFIG = saved.a;
      if (saved.b === undefined) delete process.env.LITESTREAM_CONFIG;
      else process.env.LITESTREAM_CONFIG = saved.b;
    }
  });
});
