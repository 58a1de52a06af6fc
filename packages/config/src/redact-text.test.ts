import { describe, expect, it } from 'vitest';
import { redactText } from './redact-text.js';

describe('redactText', () => {
  it('hides configured secrets, URL user info, signed-URL parameters and authorization headers', () => {
    const msg =
      'PUT https://AKIAEXAMPLE:s3cr3t-value@bucket.example/key?X-Amz-Signature=abcdef&x=1 failed: ' +
      'secret s3cr3t-value rejected, header Authorization: Bearer tok-123456';
    const out = redactText(msg, ['s3cr3t-value', undefined, 'ab']);
    expect(out).not.toContain('s3cr3t-value');
    expect(out).not.toContain('AKIAEXAMPLE');
    expect(out).not.toContain('abcdef');
    expect(out).not.toContain('tok-123456');
    expect(out).toContain('https://***@bucket.example/key?X-Amz-Signature=***&x=1');
    expect(out).toContain('Bearer ***');
  });

  it('hides URL user info whose password holds slashes', () => {
    const out = redactText("invalid replica URL 's3://AKIAEXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCY@bucket/db'", []);
    expect(out).toBe("invalid replica URL 's3://***@bucket/db'");
  });

  it('leaves a message without credentials unchanged', () => {
    const msg = 'ENOTDIR: not a directory, mkdir /srv/replica/generations';
    expect(redactText(msg, ['ab'])).toBe(msg);
  });
});
