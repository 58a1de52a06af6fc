import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** Environment variable holding the API token; it overrides the config's `server.token`. */
export const TOKEN_ENV = 'LSTREAM_SERVER_TOKEN';

/** How a request to the status API is judged. */
export type AuthPolicy =
  /** Loopback bind without a token: anyone who can connect is on this machine. */
  | { kind: 'open' }
  /** A token is configured: every API request must carry it. */
  | { kind: 'token'; token: string }
  /** Non-loopback bind without a token: the API is off, only /metrics and the health checks answer. */
  | { kind: 'disabled'; reason: string };

/** Decides the API's policy from the bound address and the configured token. */
export function authPolicy(loopback: boolean, token: string | undefined, where: string): AuthPolicy {
  if (token !== undefined) return { kind: 'token', token };
  if (loopback) return { kind: 'open' };
  return {
    kind: 'disabled',
    reason:
      `the API is disabled: lstream-server listens on ${where}, which is not a loopback address, and no token is set. ` +
      `Set server.token in the config file or $${TOKEN_ENV}, or bind 127.0.0.1.`,
  };
}

/**
 * True when the request carries `Authorization: Bearer <token>`. The comparison takes the same time
 * whatever the candidate (both sides are hashed first, so even their lengths do not leak).
 */
export function hasToken(req: IncomingMessage, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  const given = createHash('sha256').update(m?.[1] ?? '').digest();
  const want = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, want) && m !== null;
}
