import { describe, expect, it, vi } from 'vitest';
import { createLogger } from './logger.js';
import { collectSecrets } from './secrets.js';

/** Runs `fn` with stdout captured; returns what was written. */
function captureStdout(fn: () => void): string {
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    fn();
  } finally {
    spy.mockRestore();
  }
  return out;
}

describe('createLogger', () => {
  const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

  it('masks the given secrets in the message and in every string field, nested ones included', () => {
    for (const type of ['text', 'json'] as const) {
      const out = captureStdout(() => {
        const log = createLogger({ type, secrets: [secret] });
        log.error(`upload failed with ${secret}`, {
          error: new Error(`denied for ${secret}`),
          exec: `app --key=${secret}`,
          nested: { list: [`x ${secret}`] },
        });
      });
      expect(out).not.toContain(secret);
      expect(out).toContain('***');
      expect(out).toContain('upload failed with');
    }
  });
});

describe('collectSecrets', () => {
  it('gathers replica keys, extra values and credential variables, trimmed, longest first', () => {
    const secrets = collectSecrets(
      [{ path: '/d', options: {}, replicas: [{ type: 's3', name: 's3', options: {}, accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'sekrit-value-1' }] }] as never,
      [' srv-token '],
      { AWS_SESSION_TOKEN: 'session-tok-xyz', HOME: '/root' },
    );
    expect(secrets).toEqual(expect.arrayContaining(['AKIAEXAMPLE', 'sekrit-value-1', 'srv-token', 'session-tok-xyz']));
    expect(secrets).not.toContain('/root');
    expect([...secrets].sort((a, b) => b.length - a.length)).toEqual(secrets);
  });
});
