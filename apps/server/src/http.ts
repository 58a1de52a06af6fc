// The HTTP surface is six fixed routes plus one parameterised one, and @ls/metrics hands us a plain
// node (req, res) handler; node:http serves that directly, where a framework such as fastify would
// add a dependency and a lifecycle of its own for features (schemas, plugins) this server does not use.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { redactText } from '@ls/config';
import type { Logger } from '@ls/core';
import { metricsHandler, type LstreamMetrics } from '@ls/metrics';
import { hasToken, type AuthPolicy } from './auth.js';
import { DASHBOARD_HTML } from './dashboard.js';
import type { ServerStatus } from './status.js';

/** What the HTTP server serves from. */
export interface HttpContext {
  status: ServerStatus;
  metrics: LstreamMetrics;
  logger: Logger;
  /** Decided once the server is bound (it depends on the bound address). */
  auth: () => AuthPolicy;
  /** Credentials to keep out of responses. */
  secrets: readonly string[];
}

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';

function send(res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}, compact = false): void {
  send(res, status, JSON_TYPE, JSON.stringify(value, null, compact ? undefined : 2) + '\n', headers);
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  sendJson(res, 405, { error: `method not allowed; use ${allow}` }, { allow });
}

/**
 * Creates the server's HTTP handler: `/metrics`, `/healthz` and `/readyz` are open (as Litestream's
 * metrics endpoint is); the dashboard page is static and open; `/api/*` follows the auth policy.
 */
export function createHttpServer(ctx: HttpContext): Server {
  const metrics = metricsHandler(ctx.metrics);
  const server = createServer((req, res) => {
    handle(ctx, metrics, req, res).catch((err: unknown) => {
      const message = redactText(err instanceof Error ? err.message : String(err), ctx.secrets);
      ctx.logger.error('request failed', { method: req.method, path: req.url, error: message });
      if (!res.headersSent) sendJson(res, 500, { error: message });
      else res.destroy();
    });
  });
  return server;
}

async function handle(
  ctx: HttpContext,
  metrics: (req: IncomingMessage, res: ServerResponse) => void,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://server');
  const path = url.pathname;
  const read = req.method === 'GET' || req.method === 'HEAD';

  if (path === '/metrics') {
    if (!read) return methodNotAllowed(res, 'GET, HEAD');
    return metrics(req, res);
  }
  if (path === '/healthz') {
    if (!read) return methodNotAllowed(res, 'GET, HEAD');
    return send(res, 200, TEXT_TYPE, 'ok\n');
  }
  if (path === '/readyz') {
    if (!read) return methodNotAllowed(res, 'GET, HEAD');
    const r = ctx.status.readiness();
    return send(res, r.ready ? 200 : 503, TEXT_TYPE, r.ready ? 'ready\n' : `not ready:\n${r.reasons.map((x) => `- ${x}\n`).join('')}`);
  }
  if (path === '/' || path === '/index.html') {
    if (!read) return methodNotAllowed(res, 'GET, HEAD');
    return send(res, 200, 'text/html; charset=utf-8', DASHBOARD_HTML, {
      // Everything the page needs is inline; it may only talk to this server.
      'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'",
      'x-frame-options': 'DENY',
    });
  }
  if (!path.startsWith('/api/')) return sendJson(res, 404, { error: `no such page: ${path}` });

  const auth = ctx.auth();
  if (auth.kind === 'disabled') return sendJson(res, 403, { error: auth.reason });
  if (auth.kind === 'token' && !hasToken(req, auth.token)) {
    return sendJson(res, 401, { error: 'a bearer token is required: send Authorization: Bearer <token>' }, { 'www-authenticate': 'Bearer realm="lstream-server"' });
  }

  if (path === '/api/v1/databases') {
    if (!read) return methodNotAllowed(res, 'GET, HEAD');
    return sendJson(res, 200, { databases: await ctx.status.databases() });
  }
  if (path === '/api/v1/lag') {
    if (!read) return methodNotAllowed(res, 'GET, HEAD');
    // Hundreds of samples per replica, fetched every 2 s by the dashboard: not pretty-printed.
    return sendJson(res, 200, ctx.status.lag(), {}, true);
  }
  if (path === '/api/v1/errors') {
    if (!read) return methodNotAllowed(res, 'GET, HEAD');
    return sendJson(res, 200, { errors: ctx.status.errors() });
  }
  if (path === '/api/v1/status') {
    if (!read) return methodNotAllowed(res, 'GET, HEAD');
    return sendJson(res, 200, ctx.status.process());
  }
  const m = /^\/api\/v1\/databases\/([^/]+)\/snapshot$/.exec(path);
  if (m) {
    if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
    return snapshot(ctx, decodeURIComponent(m[1]!), res);
  }
  return sendJson(res, 404, { error: `no such API endpoint: ${path}` });
}

/** Takes a snapshot of database `name` on every replica now; answers with what was written. */
async function snapshot(ctx: HttpContext, name: string, res: ServerResponse): Promise<void> {
  const found = ctx.status.find(name);
  if (found.length === 0) return sendJson(res, 404, { error: `no database named '${name}'` });
  if (found.length > 1) {
    return sendJson(res, 409, {
      error: `'${name}' names ${found.length} databases (${found.map((f) => f.path).join(', ')}); give each a distinct 'name' in the config`,
    });
  }
  const { db, path } = found[0]!;
  if (!db) return sendJson(res, 503, { error: `database ${name} is not open yet` });
  const results = await Promise.all(
    db.replicas.map(async (r) => {
      try {
        const info = await r.snapshot();
        ctx.status.invalidate(r);
        return { replica: r.name, generation: info.generation, index: info.index, size: info.size, createdAt: info.createdAt.toISOString() };
      } catch (err) {
        return { replica: r.name, error: redactText(err instanceof Error ? err.message : String(err), ctx.secrets) };
      }
    }),
  );
  const failed = results.filter((r) => 'error' in r);
  for (const f of failed) ctx.logger.error('snapshot failed', { db: path, replica: f.replica, error: (f as { error: string }).error });
  for (const r of results) if (!('error' in r)) ctx.logger.info('snapshot requested through the API', { db: path, replica: r.replica, index: r.index });
  return sendJson(res, failed.length === 0 ? 200 : 502, { database: name, path, snapshots: results });
}
