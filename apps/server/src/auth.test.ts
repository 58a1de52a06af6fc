import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { authPolicy, hasToken } from './auth.js';

const req = (authorization?: string) => ({ headers: authorization === undefined ? {} : { authorization } }) as IncomingMessage;

describe('API auth', () => {
  it('is open on loopback without a token, requires a configured token anywhere, and is off on other addresses without one', () => {
    expect(authPolicy(true, undefined, '127.0.0.1:9090')).toEqual({ kind: 'open' });
    expect(authPolicy(true, 'tok', '127.0.0.1:9090')).toEqual({ kind: 'token', token: 'tok' });
    expect(authPolicy(false, 'tok', '0.0.0.0:9090')).toEqual({ kind: 'token', token: 'tok' });
    const off = authPolicy(false, undefined, '0.0.0.0:9090');
    expect(off.kind).toBe('disabled');
    expect(off.kind === 'disabled' && off.reason).toContain('server.token');
    expect(off.kind === 'disabled' && off.reason).toContain('LSTREAM_SERVER_TOKEN');
  });

  it('accepts exactly the bearer token', () => {
    expect(hasToken(req('Bearer s3cret-token'), 's3cret-token')).toBe(true);
    expect(hasToken(req('bearer s3cret-token'), 's3cret-token')).toBe(true);
    for (const h of [undefined, '', 's3cret-token', 'Bearer s3cret-toke', 'Bearer s3cret-token2', 'Basic s3cret-token', 'Bearer ']) {
      expect(hasToken(req(h), 's3cret-token'), String(h)).toBe(false);
    }
  });
});
