// End to end: the real `lstream-server` binary under conditions a reviewer found it mishandled: an
// exec child that ignores SIGTERM, a second signal, foreign Host and Origin headers (DNS rebinding,
// cross-site posts), concurrent snapshot requests, storage that hangs or answers with credentials
// in its error messages.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricValue, startServer, tempDir, until, write } from './helpers.js';

let dir: string;
let cleanup: () => void;
beforeAll(() => ({ dir, cleanup } = tempDir('lstream-server-hardening-')));
afterAll(() => cleanup());

/** True while process `pid` runs (a zombie waiting to be reaped does not count). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** A child for -exec that ignores SIGTERM and SIGINT, writes its pid to `pidFile` and runs until killed. */
function stubbornChild(pidFile: string): string {
  const script = join(dir, 'stubborn.mjs');
  writeFileSync(
    script,
    `import { writeFileSync } from 'node:fs';
process.on('SIGTERM', () => {});
process.on('SIGINT', () => {});
writeFileSync(process.argv[2], String(process.pid));
setInterval(() => {}, 1000);
`,
  );
  return `"${process.execPath}" ${script} ${pidFile}`;
}

/** Writes a config for one database `name` with a file replica (plus `top` at the top level); returns the paths. */
function oneDbConfig(name: string, top = '', addr = '127.0.0.1:0'): { db: string; configPath: string } {
  const db = join(dir, `${name}.db`);
  const configPath = join(dir, `${name}.yml`);
  writeFileSync(configPath, `addr: "${addr}"\n${top}dbs:\n  - path: ${db}\n    replicas:\n      - url: file://${join(dir, `${name}-replica`)}\n`);
  write(db, ['--rows', '5']);
  return { db, configPath };
}

/** Sends one request with exactly the given headers (fetch would set Host and Origin itself). */
function raw(url: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function listen<T extends HttpServer | TcpServer>(server: T): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

describe('lstream-server shutdown', () => {
  it('kills an exec child that ignores SIGTERM, then makes its final sync and exits', async () => {
    const pidFile = join(dir, 'stubborn1.pid');
    const { configPath } = oneDbConfig('stubborn1');
    const server = await startServer(['-config', configPath, '-exec', stubbornChild(pidFile)]);
    try {
      const pid = await until('the child to start', async () => Number(readFileSync(pidFile, 'utf8')) || undefined);
      server.proc.child.kill('SIGTERM');
      expect(await server.proc.exited).toBe(0);
      expect(server.proc.lines.some((l) => l.includes('did not exit after the stop signal'))).toBe(true);
      expect(server.proc.lines.some((l) => l.includes('stopped after a final sync'))).toBe(true);
      await until('the child to be gone', async () => (alive(pid) ? undefined : true));
    } finally {
      await server.proc.stop('SIGKILL');
    }
  }, 60_000);

  it('a second signal exits at once with 130 and takes the exec child down', async () => {
    const pidFile = join(dir, 'stubborn2.pid');
    const { configPath } = oneDbConfig('stubborn2');
    const server = await startServer(['-config', configPath, '-exec', stubbornChild(pidFile)]);
    let pid = 0;
    try {
      pid = await until('the child to start', async () => Number(readFileSync(pidFile, 'utf8')) || undefined);
      server.proc.child.kill('SIGTERM');
      await server.proc.waitFor(/signal received/);
      server.proc.child.kill('SIGINT');
      expect(await server.proc.exited).toBe(130);
      await until('the child to be gone', async () => (alive(pid) ? undefined : true));
    } finally {
      await server.proc.stop('SIGKILL');
      if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }, 60_000);
});

describe('lstream-server on loopback', () => {
  it('refuses foreign Host and Origin headers, answers 400 for a malformed name, and merges concurrent snapshots', async () => {
    const { db, configPath } = oneDbConfig('loop');
    write(db, ['--rows', '4000']);
    const server = await startServer(['-config', configPath]);
    const { url, port } = server;
    try {
      await server.proc.waitFor(/replicating database/);
      const here = `127.0.0.1:${port}`;
      expect((await raw(`${url}/api/v1/databases`, { headers: { host: here } })).status).toBe(200);
      expect((await raw(`${url}/api/v1/databases`, { headers: { host: `localhost:${port}` } })).status).toBe(200);
      expect((await raw(`${url}/api/v1/databases`, { headers: { host: `[::1]:${port}` } })).status).toBe(200);
      // DNS rebinding: the page's own name resolved to 127.0.0.1; the browser still sends that name.
      expect((await raw(`${url}/api/v1/databases`, { headers: { host: `rebind.example:${port}` } })).status).toBe(403);
      expect((await raw(`${url}/`, { headers: { host: `rebind.example:${port}` } })).status).toBe(403);
      expect((await raw(`${url}/`, { headers: { host: here } })).status).toBe(200);
      // A cross-site form post carries the other site's Origin.
      const snap = `${url}/api/v1/databases/loop.db/snapshot`;
      expect((await raw(snap, { method: 'POST', headers: { host: here, origin: 'http://evil.example' } })).status).toBe(403);
      expect((await raw(snap, { method: 'POST', headers: { host: here, origin: `http://${here}` } })).status).toBe(200);
      expect((await raw(`${url}/api/v1/databases/%E0%A4%A/snapshot`, { method: 'POST', headers: { host: here } })).status).toBe(400);

      // Two requests at once take one snapshot and get the same answer.
      const snapshots = async () => metricValue(await (await fetch(`${url}/metrics`)).text(), 'litestream_snapshot_total', db) ?? 0;
      const before = await snapshots();
      const [a, b] = await Promise.all([fetch(snap, { method: 'POST' }), fetch(snap, { method: 'POST' })]);
      expect([a.status, b.status]).toEqual([200, 200]);
      expect(await a.json()).toEqual(await b.json());
      expect(await snapshots()).toBe(before + 1);
    } finally {
      await server.proc.stop('SIGKILL');
    }
  }, 60_000);
});

describe('lstream-server with broken storage', () => {
  const secret = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYzEXAMPLEKEY';
  const sessionToken = 'IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN';
  let denying: HttpServer;
  let hanging: TcpServer;
  const held: Socket[] = [];
  let denyPort = 0;
  let hangPort = 0;
  beforeAll(async () => {
    // Storage that refuses every request and quotes the credentials in its error message.
    denying = createServer((req, res) => {
      req.resume();
      const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>key ${secret} is not allowed (session ${sessionToken})</Message><RequestId>1</RequestId></Error>`;
      res.writeHead(403, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    denyPort = await listen(denying);
    // Storage that accepts connections and never answers.
    hanging = createTcpServer((socket) => {
      held.push(socket);
      socket.resume();
    });
    hangPort = await listen(hanging);
  });
  afterAll(async () => {
    for (const s of held) s.destroy();
    await new Promise((r) => denying.close(r));
    await new Promise((r) => hanging.close(r));
  });

  const s3Replica = (name: string, port: number) => `      - type: s3
        name: ${name}
        bucket: bucket
        path: backups
        endpoint: http://127.0.0.1:${port}
        region: us-east-1
        force-path-style: true
        access-key-id: AKIAEXAMPLEKEYID1234
        secret-access-key: ${secret}
        sync-interval: 100ms
`;

  /** A server replicating database `<name>.db` (5 rows) to the storage that never answers, once it replicates. */
  async function replicatingToHungStorage(name: string) {
    const db = join(dir, `${name}.db`);
    write(db, ['--rows', '5']);
    const configPath = join(dir, `${name}.yml`);
    writeFileSync(configPath, `addr: "127.0.0.1:0"\ndbs:\n  - path: ${db}\n    replicas:\n${s3Replica('s3', hangPort)}`);
    const server = await startServer(['-config', configPath]);
    try {
      await server.proc.waitFor(/replicating database/);
    } catch (err) {
      await server.proc.stop('SIGKILL');
      throw err;
    }
    return { db, server };
  }

  it('never prints the credentials, and on a non-loopback bind without a token /readyz gives no details', async () => {
    const db = join(dir, 'denied.db');
    write(db, ['--rows', '5']);
    const configPath = join(dir, 'denied.yml');
    writeFileSync(configPath, `addr: "0.0.0.0:0"\ndbs:\n  - path: ${db}\n    replicas:\n${s3Replica('s3', denyPort)}`);
    const server = await startServer(['-config', configPath], { AWS_SESSION_TOKEN: sessionToken });
    try {
      await server.proc.waitFor(/AccessDenied|is not allowed/);
      const notReady = await until('/readyz to answer 503', async () => {
        const res = await fetch(`${server.url}/readyz`);
        return res.status === 503 ? res.text() : undefined;
      });
      expect(notReady).toBe('not ready\n');
      server.proc.child.kill('SIGTERM');
      await server.proc.exited;
      const output = server.proc.lines.join('\n') + server.proc.stderr;
      expect(output).toContain('***');
      expect(output).not.toContain(secret);
      expect(output).not.toContain(sessionToken);
    } finally {
      await server.proc.stop('SIGKILL');
    }
  }, 90_000);

  it('exits within 10 s of SIGTERM when the final sync cannot reach storage, saying so, with a non-zero code', async () => {
    const { db, server } = await replicatingToHungStorage('hung-stop');
    try {
      // Commits the hung storage never receives: the final sync has something to ship.
      write(db, ['--rows', '50']);
      const started = Date.now();
      server.proc.child.kill('SIGTERM');
      const code = await server.proc.exited;
      const tookMs = Date.now() - started;
      expect(tookMs).toBeLessThan(10_000);
      expect(code).not.toBe(0);
      expect(server.proc.lines.join('\n') + server.proc.stderr).toMatch(/shutdown deadline passed before the final sync finished/);
    } finally {
      await server.proc.stop('SIGKILL');
    }
  }, 60_000);

  it('answers the status API with a listing error when storage hangs, instead of hanging too', async () => {
    const { server } = await replicatingToHungStorage('hung');
    try {
      const res = await fetch(`${server.url}/api/v1/databases`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { databases: { replicas: { listError: string | null }[] }[] };
      expect(body.databases[0]!.replicas[0]!.listError).toMatch(/did not finish/);
      // The next request is served from the cache at once, the error still reported.
      const again = (await (await fetch(`${server.url}/api/v1/databases`)).json()) as typeof body;
      expect(again.databases[0]!.replicas[0]!.listError).toMatch(/did not finish/);
    } finally {
      await server.proc.stop('SIGKILL');
    }
  }, 90_000);
});
