import { isIP } from 'node:net';

/** Where `lstream-server` listens when neither `-addr` nor the config's `addr` says otherwise. */
export const DEFAULT_ADDR = '127.0.0.1:9090';

/** True when `ip` (a bound address, as `server.address()` reports it) accepts connections from this machine only. */
export function isLoopback(ip: string): boolean {
  const v4 = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return ip === '::1';
}

/** Formats a host and port as a URL authority (`[::1]:9090`). */
export function authority(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}
