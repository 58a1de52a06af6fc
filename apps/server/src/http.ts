// The HTTP surface is six fixed routes plus one parameterised one, and @ls/metrics hands us a plain
// node (req, res) handler; node:http serves that directly, where a framework such as fastify would
// add a dependency and a lifecycle of its own for features (schemas, plugins) this server does not use.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { redactText } from '@ls/config';
import type { Db, Logger } from '@ls/core';
import { metricsHandler, type LstreamMetrics } from '@ls/metrics';
import { isLoopback } from './addr.js';
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
  /** The address the server is bound to; undefined until it listens. */
  bound: () => { address: string; port: number } | undefined;
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
  const snapshots = new Map<string, Promise<SnapshotAnswer>>();
  const server = createServer((req, res) => {
    handle(ctx, metrics, snapshots, req, res).catch((err: unknown) => {
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
  snapshots: Map<string, Promise<SnapshotAnswer>>,
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
    // The reasons name databases, paths and storage errors: only for this machine or a token holder.
    const auth = ctx.auth();
    const detailed = boundToLoopback(ctx) || (auth.kind === 'token' && hasToken(req, auth.token));
    if (!detailed) return send(res, r.ready ? 200 : 503, TEXT_TYPE, r.ready ? 'ok\n' : 'not ready\n');
    return send(res, r.ready ? 200 : 503, TEXT_TYPE, r.ready ? 'ready\n' : `not ready:\n${r.reasons.map((x) => `- ${x}\n`).join('')}`);
  }
  if (path === '/' || path === '/index.html') {
    if (!read) return methodNotAllowed(res, 'GET, HEAD');
    const refused = refuseForeignHost(ctx, req);
    if (refused) return sendJson(res, 403, { error: refused });
    return send(res, 200, 'text/html; charset=utf-8', DASHBOARD_HTML, {
      // Everything the page needs is inline; it may only talk to this server.
      'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'",
      'x-frame-options': 'DENY',
    });
  }
  if (!path.startsWith('/api/')) return sendJson(res, 404, { error: `no such page: ${path}` });
  const refused = refuseForeignHost(ctx, req) ?? (read ? undefined : refuseForeignOrigin(req));
  if (refused) return sendJson(res, 403, { error: refused });

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
    let name: string;
    try {
      name = decodeURIComponent(m[1]!);
    } catch (err) {
      if (!(err instanceof URIError)) throw err;
      return sendJson(res, 400, { error: `malformed percent-encoding in the database name '${m[1]}'` });
    }
    return snapshot(ctx, snapshots, name, res);
  }
  return sendJson(res, 404, { error: `no such API endpoint: ${path}` });
}

/** What a snapshot request answers; requests for the same database while one runs share it. */
interface SnapshotAnswer {
  status: number;
  body: unknown;
}

/**
 * Takes a snapshot of database `name` on every replica now; answers with what was written. A request
 * for a database whose snapshot is already running waits for that one and gets its answer, so a
 * double click or a retrying client does not queue snapshot after snapshot.
 */
async function snapshot(ctx: HttpContext, running: Map<string, Promise<SnapshotAnswer>>, name: string, res: ServerResponse): Promise<void> {
  const found = ctx.status.find(name);
  if (found.length === 0) return sendJson(res, 404, { error: `no database named '${name}'` });
  if (found.length > 1) {
    return sendJson(res, 409, {
      error: `'${name}' names ${found.length} databases (${found.map((f) => f.path).join(', ')}); give each a distinct 'name' in the config`,
    });
  }
  const { db, path } = found[0]!;
  if (!db) return sendJson(res, 503, { error: `database ${name} is not open yet` });
  let answer = running.get(path);
  if (!answer) {
    answer = takeSnapshots(ctx, db, name, path).finally(() => running.delete(path));
    running.set(path, answer);
  }
  const { status, body } = await answer;
  return sendJson(res, status, body);
}

async function takeSnapshots(ctx: HttpContext, db: Db, name: string, path: string): Promise<SnapshotAnswer> {
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
  return { status: failed.length === 0 ? 200 : 502, body: { database: name, path, snapshots: results } };
}

/** True when the server listens on a loopback address (only this machine can connect). */
function boundToLoopback(ctx: HttpContext): boolean {
  const b = ctx.bound();
  return b !== undefined && isLoopback(b.address);
}

/** The host name of a Host header (`[::1]:9090` → `::1`), lower case; undefined when it is malformed. */
function hostName(host: string): string | undefined {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::\d*)?$/i.exec(host.trim());
  return m ? (m[1] ?? m[2])!.toLowerCase() : undefined;
}

/**
 * On a loopback bind, refuses requests whose Host header is not a loopback name or address (nor the
 * bound address): a page on another site can make a browser resolve its own name to 127.0.0.1 (DNS
 * rebinding) and would then read the open API as same-origin; the Host header it sends still names
 * that site. Returns why the request is refused, or undefined when it may go on.
 */
function refuseForeignHost(ctx: HttpContext, req: IncomingMessage): string | undefined {
  const bound = ctx.bound();
  if (!bound || !isLoopback(bound.address)) return undefined;
  const host = req.headers.host === undefined ? undefined : hostName(req.headers.host);
  if (host !== undefined && (host === 'localhost' || host.endsWith('.localhost') || isLoopback(host) || host === bound.address.toLowerCase())) {
    return undefined;
  }
  return `host ${JSON.stringify(req.headers.host ?? '')} is not this server's loopback address; open it as http://localhost:${bound.port}/ or http://127.0.0.1:${bound.port}/`;
}

/**
 * Refuses a state-changing request sent by a page of another origin (a cross-site form post needs no
 * token on a loopback bind): when the browser says where the request comes from (Origin), it must be
 * this server (`http://<Host>`). Clients that send no Origin, such as curl, are not browsers.
 */
function refuseForeignOrigin(req: IncomingMessage): string | undefined {
  const origin = req.headers.origin;
  if (origin === undefined) return undefined;
  if (req.headers.host !== undefined && origin.toLowerCase() === `http://${req.headers.host}`.toLowerCase()) return undefined;
  return `cross-origin request from ${JSON.stringify(origin)} refused; send API requests from this server's own pages or without an Origin header`;
}
