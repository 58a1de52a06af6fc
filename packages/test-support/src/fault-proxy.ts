import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the proxy does with one request. */
export type FaultAction =
  /** Pass it on untouched (optionally adding response headers). */
  | { kind: 'forward'; addHeaders?: Record<string, string> }
  /** Answer with the protocol's error document (S3 XML, GCS JSON), without asking the server. */
  | { kind: 'error'; status: number; code: string; message?: string }
  /** Reset the connection before the server sees the request. */
  | { kind: 'reset-before' }
  /** Let the server do the work, then reset the connection instead of answering. */
  | { kind: 'reset-after' }
  /** Send the server's headers and half its body, then reset the connection. */
  | { kind: 'truncate' }
  /** Answer with this response, without asking the server. */
  | { kind: 'respond'; status: number; contentType: string; body: string }
  /** Wait, then forward. */
  | { kind: 'delay'; ms: number }
  /** Wait longer than the client will (its idle timeout), then forward. */
  | { kind: 'stall'; ms: number };

/** The request as rules see it. */
export interface ProxiedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
}

/** Random faults, as fractions of requests (their sum should stay well below 1). */
export interface FaultRates {
  /** Answered 500 InternalError or 503 SlowDown (with the protocol's error body). */
  serverError?: number;
  /** Connection reset before forwarding. */
  resetBefore?: number;
  /** Connection reset after the server handled the request. */
  resetAfter?: number;
  /** Object downloads (GET of a key) cut off half way. */
  truncate?: number;
  /** Delayed by 20-200 ms. */
  delay?: number;
  /** Delayed past `stallMs` (use more than the client's idle timeout). */
  stall?: number;
  stallMs?: number;
}

/** How a storage protocol spells an error answer, and which requests belong to one client operation. */
export interface FaultProtocol {
  /** The body of an injected error answer. */
  errorBody(status: number, code: string, message: string): { contentType: string; body: string };
  /** Identifies the client operation a request belongs to (shared by its retries); '' when unknown. */
  invocationId(req: ProxiedRequest): string;
  /** Tells object downloads (which `truncate` faults cut short) from other requests. Default: a GET of a key, S3-style. */
  isObjectRead?(req: ProxiedRequest): boolean;
}

/** S3: XML error documents; the AWS SDK's `amz-sdk-invocation-id` header. */
export const S3_PROTOCOL: FaultProtocol = {
  errorBody: (_status, code, message) => ({ contentType: 'application/xml', body: errorXml(code, message) }),
  invocationId: (req) => String(req.headers['amz-sdk-invocation-id'] ?? ''),
};

/**
 * GCS JSON API: `{"error":{"code":...,"message":...,"errors":[...]}}` error bodies (the SDK reads
 * `errors[].reason`, here the injected code); the invocation id that @google-cloud/storage 7 puts in
 * `x-goog-api-client` (`... gccl-invocation-id/<uuid> ...`), the same for every retry of one request
 * (resumable uploads use one per session start, chunk and status check). Object reads are media
 * downloads (`alt=media`).
 */
export const GCS_PROTOCOL: FaultProtocol = {
  errorBody: (status, code, message) => ({
    contentType: 'application/json; charset=UTF-8',
    body: JSON.stringify({ error: { code: status, message, errors: [{ message, domain: 'global', reason: code }] } }),
  }),
  invocationId: (req) => /gccl-invocation-id\/([0-9a-f-]+)/i.exec(String(req.headers['x-goog-api-client'] ?? ''))?.[1] ?? '',
  isObjectRead: (req) => req.method === 'GET' && (req.query.get('alt') === 'media' || req.path.startsWith('/download/')),
};

/** A fault-injecting HTTP proxy in front of a storage endpoint. */
export interface FaultProxy {
  endpoint: string;
  /** Faults injected so far, by kind. */
  readonly injected: Record<string, number>;
  /** Every request seen, in order. */
  readonly requests: ProxiedRequest[];
  /** Bytes of UploadPart requests the server acknowledged. */
  readonly uploadedPartBytes: number;
  /** Rules tried before the random faults; the first that returns an action wins. */
  rules: ((req: ProxiedRequest) => FaultAction | undefined)[];
  /** Turns the random faults off (rules still apply). */
  calm(): void;
  close(): Promise<void>;
}

/** Returns a deterministic pseudo-random generator in [0, 1) (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'expect']);

function errorXml(code: string, message: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault-proxy</RequestId></Error>`;
}

async function drain(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/**
 * Starts an HTTP proxy on 127.0.0.1 in front of `upstream` (`http://host:port`) that answers some
 * requests with 500/503, resets some connections before or after the server handled them, cuts
 * some downloads short and delays others. At most `maxFaultsPerInvocation` random faults hit one
 * client operation (as `protocol.invocationId` tells them apart; S3's by default), so a client that
 * retries enough always gets through.
 */
export async function startFaultProxy(
  upstream: string,
  options: { rates?: FaultRates; seed?: number; maxFaultsPerInvocation?: number; protocol?: FaultProtocol } = {},
): Promise<FaultProxy> {
  const protocol = options.protocol ?? S3_PROTOCOL;
  const target = new URL(upstream);
  let rates: FaultRates = options.rates ?? {};
  const random = seeded(options.seed ?? 1);
  const maxPerInvocation = options.maxFaultsPerInvocation ?? 2;
  const perInvocation = new Map<string, number>();
  const injected: Record<string, number> = {};
  const requests: ProxiedRequest[] = [];
  let uploadedPartBytes = 0;

  function pickRandom(req: ProxiedRequest): FaultAction {
    const id = protocol.invocationId(req);
    if (id === '' || (perInvocation.get(id) ?? 0) >= maxPerInvocation) return { kind: 'forward' };
    const isObjectGet = protocol.isObjectRead
      ? protocol.isObjectRead(req)
      : req.method === 'GET' && req.path.split('/').filter(Boolean).length > 1 && !req.query.has('uploadId');
    let r = random();
    const pick = (rate: number | undefined) => {
      if (!rate) return false;
      if (r < rate) return true;
      r -= rate;
      return false;
    };
    let action: FaultAction = { kind: 'forward' };
    if (pick(rates.serverError)) {
      action = random() < 0.5 ? { kind: 'error', status: 500, code: 'InternalError' } : { kind: 'error', status: 503, code: 'SlowDown' };
    } else if (pick(rates.resetBefore)) action = { kind: 'reset-before' };
    else if (pick(rates.resetAfter)) action = { kind: 'reset-after' };
    else if (isObjectGet && pick(rates.truncate)) action = { kind: 'truncate' };
    else if (pick(rates.stall)) action = { kind: 'stall', ms: rates.stallMs ?? 2000 };
    else if (pick(rates.delay)) action = { kind: 'delay', ms: 20 + Math.floor(random() * 180) };
    if (action.kind !== 'forward') perInvocation.set(id, (perInvocation.get(id) ?? 0) + 1);
    return action;
  }

  const proxy: FaultProxy = {
    endpoint: '',
    injected,
    requests,
    get uploadedPartBytes() {
      return uploadedPartBytes;
    },
    rules: [],
    calm() {
      rates = {};
    },
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };

  async function forward(req: IncomingMessage, res: ServerResponse, body: Buffer, action: FaultAction): Promise<void> {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    headers['content-length'] = String(body.length);
    const upstreamRes = await new Promise<IncomingMessage>((resolve, reject) => {
      const up = httpRequest({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, resolve);
      up.on('error', reject);
      up.end(body);
    });
    const payload = await drain(upstreamRes);
    const u = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'PUT' && u.searchParams.has('partNumber') && upstreamRes.statusCode === 200) uploadedPartBytes += body.length;
    if (action.kind === 'reset-after') {
      res.socket?.resetAndDestroy();
      return;
    }
    const outHeaders: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(upstreamRes.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) outHeaders[k] = v;
    if (action.kind === 'forward' && action.addHeaders) Object.assign(outHeaders, action.addHeaders);
    if (action.kind === 'truncate' && payload.length > 1) {
      outHeaders['content-length'] = String(payload.length);
      res.writeHead(upstreamRes.statusCode ?? 500, outHeaders);
      res.write(payload.subarray(0, Math.floor(payload.length / 2)), () => setTimeout(() => res.socket?.resetAndDestroy(), 5));
      return;
    }
    res.writeHead(upstreamRes.statusCode ?? 500, outHeaders);
    res.end(payload);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    const seen: ProxiedRequest = { method: req.method ?? 'GET', path: u.pathname, query: u.searchParams, headers: req.headers };
    requests.push(seen);
    let action: FaultAction | undefined;
    for (const rule of proxy.rules) {
      action = rule(seen);
      if (action) break;
    }
    action ??= pickRandom(seen);
    if (action.kind !== 'forward') injected[action.kind] = (injected[action.kind] ?? 0) + 1;
    if (action.kind === 'reset-before') {
      req.socket.resetAndDestroy();
      return;
    }
    const body = await drain(req);
    if (action.kind === 'error') {
      const { contentType, body: text } = protocol.errorBody(action.status, action.code, action.message ?? `injected ${action.code}`);
      res.writeHead(action.status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
      res.end(req.method === 'HEAD' ? undefined : text);
      return;
    }
    if (action.kind === 'respond') {
      res.writeHead(action.status, { 'content-type': action.contentType, 'content-length': Buffer.byteLength(action.body) });
      res.end(action.body);
      return;
    }
    if (action.kind === 'delay' || action.kind === 'stall') await new Promise((r) => setTimeout(r, action.ms));
    if (res.socket?.destroyed) return; // the client gave up meanwhile
    await forward(req, res, body, action);
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent && !res.socket?.destroyed) {
        res.writeHead(502);
        res.end();
      } else {
        res.socket?.destroy();
      }
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return proxy;
}
