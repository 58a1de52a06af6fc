import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidArgumentError, LstreamError } from '@ls/core';
import type { LstreamMetrics } from './lstream-metrics.js';

/** Raised when the metrics server cannot listen on its address (in use, not local, denied). */
export class MetricsServerError extends LstreamError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('EMETRICSSERVER', message, options);
  }
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

function sendText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Returns a node:http request handler answering GET and HEAD /metrics with the Prometheus text
 * exposition, 405 for other methods there, and 404 for every other path. When collecting fails it
 * answers 500 with the error's message, so the scrape shows the failure instead of stale numbers (a
 * single database whose status cannot be read only loses its own gauges, see LstreamMetrics).
 */
export function metricsHandler(metrics: LstreamMetrics): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (pathOf(req) !== '/metrics') return sendText(res, 404, 'not found; metrics are at /metrics\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
    metrics.metrics().then(
      (body) => {
        res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => sendText(res, 500, `collecting metrics failed: ${err instanceof Error ? err.message : String(err)}\n`),
    );
  };
}

/**
 * Parses a listen address as Litestream's `addr` takes it: `:9090` (every interface), `host:9090`, or
 * `[::1]:9090`. The port is required; 0 picks a free one. Throws InvalidArgumentError otherwise.
 */
export function parseListenAddress(addr: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(addr.trim());
  if (!m) {
    throw new InvalidArgumentError(`metrics address ${JSON.stringify(addr)} is not host:port; use ":9090" for every interface or "127.0.0.1:9090"`);
  }
  const port = Number(m[3]);
  if (!Number.isInteger(port) || port > 65_535) {
    throw new InvalidArgumentError(`metrics address ${JSON.stringify(addr)}: port ${m[3]} is out of range (0-65535)`);
  }
  const host = m[1] ?? m[2];
  return { host: host === '' ? undefined : host, port };
}

/**
 * Starts an HTTP server on `addr` (Litestream form ":9090" means all interfaces, "host:port", port 0
 * allowed) serving only /metrics and /healthz (200 "ok" while the process runs). Resolves once it
 * listens, with the address it got; rejects with InvalidArgumentError for a malformed address and
 * MetricsServerError when it cannot listen. `close()` stops it, dropping open keep-alive connections.
 */
export function serveMetrics(
  metrics: LstreamMetrics,
  addr: string,
): Promise<{ server: Server; host: string; port: number; close(): Promise<void> }> {
  let parsed: ReturnType<typeof parseListenAddress>;
  try {
    parsed = parseListenAddress(addr);
  } catch (err) {
    return Promise.reject(err);
  }
  const handle = metricsHandler(metrics);
  const server = createServer((req, res) => {
    if (pathOf(req) === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
      return sendText(res, 200, 'ok\n');
    }
    handle(req, res);
  });
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      reject(new MetricsServerError(`cannot serve metrics on ${addr}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(parsed.port, parsed.host, () => {
      server.off('error', onError);
      const a = server.address() as AddressInfo;
      resolve({
        server,
        host: a.address,
        port: a.port,
        close: () =>
          new Promise<void>((res, rej) => {
            server.close((err) => (err ? rej(err) : res()));
            server.closeAllConnections();
          }),
      });
    });
  });
}
