import { describe, expect, it } from 'vitest';
import { authority, isLoopback } from './addr.js';

describe('isLoopback', () => {
  it('accepts only addresses reachable from this machine alone', () => {
    for (const ip of ['127.0.0.1', '127.8.9.1', '::1', '::ffff:127.0.0.1']) expect(isLoopback(ip), ip).toBe(true);
    for (const ip of ['0.0.0.0', '::', '10.0.0.5', '192.168.1.2', '::ffff:10.0.0.1', 'fe80::1']) expect(isLoopback(ip), ip).toBe(false);
  });

  it('formats IPv6 authorities in brackets', () => {
    expect(authority('::1', 9090)).toBe('[::1]:9090');
    expect(authority('127.0.0.1', 9090)).toBe('127.0.0.1:9090');
  });
});
