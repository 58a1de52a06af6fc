import { LstreamError } from '@ls/core';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './config-error.js';

describe('ConfigError', () => {
  it('is an LstreamError with code ECONFIG and its location fields', () => {
    const cause = new Error('low level');
    const err = new ConfigError('bad value', { key: 'dbs[0].path', line: 3, file: '/etc/lstream.yml', hint: 'Fix it.', cause });
    expect(err).toBeInstanceOf(LstreamError);
    expect(LstreamError.isInstance(err)).toBe(true);
    expect(ConfigError.isInstance(err)).toBe(true);
    expect(err).toMatchObject({ code: 'ECONFIG', name: 'ConfigError', key: 'dbs[0].path', line: 3, file: '/etc/lstream.yml', problem: 'bad value', hint: 'Fix it.', cause });
    expect(err.message).toBe('/etc/lstream.yml:3: dbs[0].path: bad value. Fix it.');
  });

  it('leaves out the parts it does not have', () => {
    expect(new ConfigError('oops').message).toBe('oops.');
    expect(new ConfigError('oops.', { key: 'addr' }).message).toBe('addr: oops.');
    expect(new ConfigError('oops', { line: 2 }).message).toBe('line 2: oops.');
    expect(new ConfigError('oops', { file: 'x.yml' }).message).toBe('x.yml: oops.');
    const bare = new ConfigError('oops');
    expect([bare.key, bare.line, bare.file, bare.hint]).toEqual([undefined, undefined, undefined, undefined]);
  });
});
