import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import {
  InvalidArgumentError,
  InvalidKeyError,
  NotFoundError,
  compareKeys,
  isAbortError,
  parseLayoutKey,
  snapshotKey,
  walSegmentKey,
  type ListEntry,
  type ReplicaClient,
} from '@ls/core';
import { describe, expect, it, type TestContext } from 'vitest';

/** A client under test and how to dispose of it. */
export interface ConformanceTarget {
  client: ReplicaClient;
  /** Removes everything the test wrote (a fresh root or random prefix per target keeps tests apart). */
  cleanup?: () => Promise<void>;
}

/** Tunables for slow or constrained storage. Defaults follow the contract's own numbers. */
export interface ConformanceOptions {
  /** Size of the large round-trip body, in bytes (default 64 MiB). */
  largeBodyBytes?: number;
  /** Keys written to test listing across pages and batch delete (default 1100, past S3's 1000-key pages). */
  manyKeys?: number;
  /** Per-test timeout in milliseconds (default 120 s). */
  timeoutMs?: number;
}

const MiB = 1024 * 1024;

/** Deterministic, incompressible-looking bytes (xorshift32). */
function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

async function keysOf(client: ReplicaClient, prefix: string, delimiter?: '/'): Promise<ListEntry[]> {
  const out: ListEntry[] = [];
  for await (const e of client.list(prefix, delimiter ? { delimiter } : {})) out.push(e);
  return out;
}

async function* chunks(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield p;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the operation to reject, but it resolved');
}

/**
 * Registers the ReplicaClient conformance suite in the calling vitest file. `factory` is called once
 * per test and must return an isolated client (fresh directory, random key prefix, ...). Tests that
 * need a capability the client does not declare are reported as skipped, never as passed.
 */
export function describeReplicaClientConformance(
  name: string,
  factory: () => Promise<ConformanceTarget>,
  options: ConformanceOptions = {},
): void {
  const largeBodyBytes = options.largeBodyBytes ?? 64 * MiB;
  const manyKeys = options.manyKeys ?? 1100;
  const timeout = options.timeoutMs ?? 120_000;

  const test = (title: string, fn: (client: ReplicaClient, ctx: TestContext) => Promise<void>) =>
    it(
      title,
      async (ctx) => {
        const target = await factory();
        try {
          await fn(target.client, ctx);
        } finally {
          await target.client.close?.();
          await target.cleanup?.();
        }
      },
      timeout,
    );

  describe(`ReplicaClient conformance: ${name}`, () => {
    test('declares its type and capabilities', async (client) => {
      expect(typeof client.type).toBe('string');
      expect(client.type.length).toBeGreaterThan(0);
      expect(typeof client.capabilities.listDelimiter).toBe('boolean');
      expect(typeof client.capabilities.rangeRead).toBe('boolean');
      expect(client.capabilities.deleteMaxBatch).toBeGreaterThanOrEqual(1);
      expect(client.capabilities.timestampResolutionMs).toBeGreaterThanOrEqual(1);
    });

    describe('put and open', () => {
      test('round-trips an empty body, from bytes and from a stream', async (client) => {
        const a = await client.put('empty/bytes', new Uint8Array(0));
        const b = await client.put('empty/stream', chunks());
        expect(a.size).toBe(0);
        expect(b.size).toBe(0);
        expect((await readAll(await client.open('empty/bytes'))).length).toBe(0);
        expect((await readAll(await client.open('empty/stream'))).length).toBe(0);
        const listed = await keysOf(client, 'empty/');
        expect(listed.map((e) => [e.key, e.type === 'object' && e.size])).toEqual([
          ['empty/bytes', 0],
          ['empty/stream', 0],
        ]);
      });

      test('round-trips every byte value, whole and in odd chunks', async (client) => {
        const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const body = Buffer.concat([all, all, all]);
        const info = await client.put('small/whole', body);
        expect(info.key).toBe('small/whole');
        expect(info.size).toBe(body.length);
        await client.put('small/chunks', chunks(body.subarray(0, 1), body.subarray(1, 300), body.subarray(300)), { size: body.length });
        expect((await readAll(await client.open('small/whole'))).equals(body)).toBe(true);
        expect((await readAll(await client.open('small/chunks'))).equals(body)).toBe(true);
      });

      test(`round-trips a ${Math.round(largeBodyBytes / MiB)} MiB body streamed in and out`, async (client) => {
        const inHash = createHash('sha256');
        async function* big() {
          for (let done = 0, i = 0; done < largeBodyBytes; i++) {
            const n = Math.min(MiB + 17, largeBodyBytes - done);
            const c = pseudoRandom(n, i + 1);
            inHash.update(c);
            done += n;
            yield c;
          }
        }
        const info = await client.put('large/body', big());
        expect(info.size).toBe(largeBodyBytes);
        const outHash = createHash('sha256');
        let size = 0;
        for await (const c of await client.open('large/body')) {
          outHash.update(c as Buffer);
          size += (c as Buffer).length;
        }
        expect(size).toBe(largeBodyBytes);
        expect(outHash.digest('hex')).toBe(inHash.digest('hex'));
      });

      test('overwrites an existing key whole', async (client) => {
        await client.put('over/k', pseudoRandom(5000, 1));
        const second = pseudoRandom(1000, 2);
        const info = await client.put('over/k', second);
        expect(info.size).toBe(1000);
        expect((await readAll(await client.open('over/k'))).equals(second)).toBe(true);
        const listed = await keysOf(client, 'over/');
        expect(listed).toHaveLength(1);
        expect(listed[0]!.type === 'object' && listed[0]!.size).toBe(1000);
      });

      test('rejects opening a missing key with NotFoundError', async (client) => {
        await client.put('present/a', Buffer.from('x'));
        for (const key of ['present/b', 'absent/a', 'present']) {
          const err = await rejection(client.open(key));
          expect(NotFoundError.isInstance(err), `${key}: ${String(err)}`).toBe(true);
        }
      });

      test('reads a byte range', async (client, ctx) => {
        if (!client.capabilities.rangeRead) ctx.skip('client does not declare rangeRead');
        const body = pseudoRandom(10_000, 3);
        await client.put('range/k', body);
        expect((await readAll(await client.open('range/k', { range: { start: 10, end: 19 } }))).equals(body.subarray(10, 20))).toBe(true);
        expect((await readAll(await client.open('range/k', { range: { start: 9000 } }))).equals(body.subarray(9000))).toBe(true);
        // An end past the object stops at its last byte, as an HTTP range does.
        expect((await readAll(await client.open('range/k', { range: { start: 9990, end: 20_000 } }))).equals(body.subarray(9990))).toBe(true);
        for (const range of [{ start: 20, end: 10 }, { start: -1 }, { start: 1.5 }, { start: 0, end: Number.NaN }]) {
          const err = await rejection(client.open('range/k', { range }));
          expect(InvalidArgumentError.isInstance(err), `${JSON.stringify(range)}: ${String(err)}`).toBe(true);
        }
      });

      test('rejects with the body’s own error and keeps the previous object', async (client) => {
        const before = Buffer.from('previous');
        await client.put('failing/k', before);
        const boom = new Error('body failed');
        async function* failing() {
          yield Buffer.alloc(1000, 1);
          throw boom;
        }
        expect(await rejection(client.put('failing/k', failing()))).toBe(boom);
        expect((await readAll(await client.open('failing/k'))).equals(before)).toBe(true);
        const fresh = await rejection(client.put('failing/new', failing()));
        expect(fresh).toBe(boom);
        expect(NotFoundError.isInstance(await rejection(client.open('failing/new')))).toBe(true);
        expect((await keysOf(client, 'failing/')).map((e) => e.key)).toEqual(['failing/k']);
      });
    });

    describe('list', () => {
      test('yields nothing for an empty root or a missing prefix', async (client) => {
        expect(await keysOf(client, '')).toEqual([]);
        expect(await keysOf(client, 'nothing/here/')).toEqual([]);
        await client.put('some/key', Buffer.from('x'));
        expect(await keysOf(client, 'nothing/')).toEqual([]);
        expect(await keysOf(client, 'some/key/')).toEqual([]);
      });

      test('matches prefixes as plain strings and sorts by key bytes', async (client) => {
        // No key is also a directory of others ('p/a' beside 'p/a/b'): the contract lets clients refuse that.
        const keys = ['p/a-b', 'p/a/b', 'p/a0', 'p/ab/c/d', 'p/b', 'p/é', 'q/a', 'p/a/c/d'];
        await Promise.all(keys.map((k, i) => client.put(k, pseudoRandom(i + 1, i + 1))));
        const all = (await keysOf(client, 'p/')).map((e) => e.key);
        expect(all).toEqual(keys.filter((k) => k.startsWith('p/')).sort(compareKeys));
        expect((await keysOf(client, 'p/a')).map((e) => e.key)).toEqual(['p/a-b', 'p/a/b', 'p/a/c/d', 'p/a0', 'p/ab/c/d']);
        expect((await keysOf(client, 'p/a/')).map((e) => e.key)).toEqual(['p/a/b', 'p/a/c/d']);
      });

      test('reports each object’s size and timestamp as put returned them', async (client) => {
        const started = Date.now();
        const infos = [await client.put('ts/a', pseudoRandom(10, 1)), await client.put('ts/b', pseudoRandom(2000, 2))];
        const listed = await keysOf(client, 'ts/');
        const res = client.capabilities.timestampResolutionMs;
        const skewMs = 10 * 60_000; // storage clocks may differ from ours
        for (const [i, e] of listed.entries()) {
          if (e.type !== 'object') throw new Error('expected an object');
          expect(e.size).toBe(infos[i]!.size);
          expect(e.createdAt).toBeInstanceOf(Date);
          expect(Math.abs(e.createdAt.getTime() - infos[i]!.createdAt.getTime())).toBeLessThanOrEqual(res);
          expect(Math.abs(e.createdAt.getTime() - started)).toBeLessThan(skewMs);
        }
      });

      test('gives an overwritten object a timestamp no earlier than before', async (client) => {
        const first = await client.put('ts/k', Buffer.from('1'));
        await new Promise((r) => setTimeout(r, client.capabilities.timestampResolutionMs + 20));
        const second = await client.put('ts/k', Buffer.from('2'));
        expect(second.createdAt.getTime()).toBeGreaterThanOrEqual(first.createdAt.getTime());
        const [e] = await keysOf(client, 'ts/k');
        expect(e?.type === 'object' && e.createdAt.getTime()).toBeGreaterThan(first.createdAt.getTime() - 1);
      });

      test('rolls keys up into common prefixes with a delimiter, only for prefixes holding objects', async (client, ctx) => {
        if (!client.capabilities.listDelimiter) ctx.skip('client does not declare listDelimiter');
        for (const k of ['g/a/1', 'g/a/2', 'g/b/x/y', 'g/c', 'g/a-1', 'g/d/e/f/g']) await client.put(k, Buffer.from(k));
        const entries = await keysOf(client, 'g/', '/');
        expect(entries.map((e) => [e.type, e.key])).toEqual([
          ['object', 'g/a-1'],
          ['prefix', 'g/a/'],
          ['prefix', 'g/b/'],
          ['object', 'g/c'],
          ['prefix', 'g/d/'],
        ]);
        await client.delete(['g/b/x/y', 'g/d/e/f/g']);
        expect((await keysOf(client, 'g/', '/')).map((e) => e.key)).toEqual(['g/a-1', 'g/a/', 'g/c']);
      });

      test(`lists ${manyKeys} keys sorted across pages, stops when the consumer stops, and deletes them in one batch`, async (client) => {
        const keys = Array.from({ length: manyKeys }, (_, i) => `many/${(i * 7919) % 3 === 0 ? 'x' : 'y'}/${((i * 2654435761) >>> 0).toString(36)}-${i}`);
        for (let i = 0; i < keys.length; i += 50) {
          await Promise.all(keys.slice(i, i + 50).map((k) => client.put(k, Buffer.from(k))));
        }
        const listed = (await keysOf(client, 'many/')).map((e) => e.key);
        expect(listed).toEqual([...keys].sort(compareKeys));
        let seen = 0;
        for await (const _ of client.list('many/')) {
          if (++seen === 3) break;
        }
        expect(seen).toBe(3);
        await client.delete([...keys, 'many/missing-1', 'many/missing-2']);
        expect(await keysOf(client, 'many/')).toEqual([]);
      });
    });

    describe('delete', () => {
      test('ignores missing keys and deletes the rest', async (client) => {
        await client.delete([]);
        await client.delete(['never/was', 'never/there']);
        await client.put('del/a', Buffer.from('a'));
        await client.put('del/b', Buffer.from('b'));
        await client.delete(['del/a', 'del/zzz']);
        expect((await keysOf(client, 'del/')).map((e) => e.key)).toEqual(['del/b']);
        expect(NotFoundError.isInstance(await rejection(client.open('del/a')))).toBe(true);
      });
    });

    describe('keys', () => {
      test('stores the layout’s edge keys', async (client) => {
        const edge = [
          snapshotKey('0000000000000000', 0),
          snapshotKey('ffffffffffffffff', 0x7fffffff),
          walSegmentKey('0000000000000000', 0, 0),
          walSegmentKey('ffffffffffffffff', 0x7fffffff, 0xffffffff),
          walSegmentKey('ffffffffffffffff', 0x7fffffff, 0xfffffffe),
        ];
        for (const k of edge) await client.put(k, Buffer.from(k));
        const listed = (await keysOf(client, 'generations/')).map((e) => e.key);
        expect(listed).toEqual([...edge].sort(compareKeys));
        for (const k of listed) {
          expect(parseLayoutKey(k)).toBeDefined();
          expect((await readAll(await client.open(k))).toString()).toBe(k);
        }
      });

      test('rejects invalid keys with InvalidKeyError and writes nothing', async (client) => {
        for (const key of ['', '/abs', '../escape', 'a/../../escape', 'a//b', 'a/', 'x.tmp', 'a\\b']) {
          expect(InvalidKeyError.isInstance(await rejection(client.put(key, Buffer.from('x')))), key).toBe(true);
          expect(InvalidKeyError.isInstance(await rejection(client.open(key))), key).toBe(true);
          expect(InvalidKeyError.isInstance(await rejection(client.delete([key]))), key).toBe(true);
        }
        expect(InvalidKeyError.isInstance(await rejection(keysOf(client, '../')))).toBe(true);
        expect(await keysOf(client, '')).toEqual([]);
      });
    });

    describe('concurrency', () => {
      test('keeps every object of 32 concurrent puts', async (client) => {
        const bodies = Array.from({ length: 32 }, (_, i) => pseudoRandom(10_000 + i, i + 1));
        await Promise.all(bodies.map((b, i) => client.put(`conc/${i.toString().padStart(2, '0')}`, chunks(b.subarray(0, 5000), b.subarray(5000)))));
        const listed = await keysOf(client, 'conc/');
        expect(listed).toHaveLength(32);
        for (const [i, b] of bodies.entries()) {
          expect((await readAll(await client.open(`conc/${i.toString().padStart(2, '0')}`))).equals(b)).toBe(true);
        }
      });

      test('leaves exactly one whole body after concurrent puts to one key', async (client) => {
        const bodies = Array.from({ length: 8 }, (_, i) => pseudoRandom(256 * 1024, 100 + i));
        await Promise.all(bodies.map((b) => client.put('race/k', chunks(b.subarray(0, 100_000), b.subarray(100_000)))));
        const got = await readAll(await client.open('race/k'));
        expect(bodies.some((b) => b.equals(got))).toBe(true);
        expect(await keysOf(client, 'race/')).toHaveLength(1);
      });
    });

    describe('abort', () => {
      test('rejects every call with an AbortError once the signal is aborted, changing nothing', async (client) => {
        await client.put('abort/keep', Buffer.from('keep'));
        const signal = AbortSignal.abort();
        expect(isAbortError(await rejection(client.put('abort/new', Buffer.from('x'), { signal })))).toBe(true);
        expect(isAbortError(await rejection(client.open('abort/keep', { signal })))).toBe(true);
        expect(isAbortError(await rejection(client.delete(['abort/keep'], { signal })))).toBe(true);
        expect(isAbortError(await rejection((async () => { for await (const _ of client.list('abort/', { signal })); })()))).toBe(true);
        expect((await keysOf(client, 'abort/')).map((e) => e.key)).toEqual(['abort/keep']);
      });

      test('abandons a put aborted mid-stream, keeping the previous object', async (client) => {
        const before = Buffer.from('before');
        await client.put('abort/k', before);
        const ac = new AbortController();
        let release!: () => void;
        const stuck = new Promise<void>((r) => (release = r));
        async function* slow() {
          yield Buffer.alloc(64 * 1024, 1);
          setTimeout(() => ac.abort(), 50);
          await stuck;
          yield Buffer.alloc(64 * 1024, 2);
        }
        const err = await rejection(client.put('abort/k', slow(), { signal: ac.signal }));
        release();
        expect(isAbortError(err), String(err)).toBe(true);
        expect((await readAll(await client.open('abort/k'))).equals(before)).toBe(true);
        expect((await keysOf(client, 'abort/')).map((e) => e.key)).toEqual(['abort/k']);
      });

      test('errors a read stream with an AbortError when aborted mid-read', async (client) => {
        await client.put('abort/big', pseudoRandom(8 * MiB, 9));
        const ac = new AbortController();
        const stream = await client.open('abort/big', { signal: ac.signal });
        const err = await rejection(
          (async () => {
            for await (const _ of stream) ac.abort();
          })(),
        );
        expect(isAbortError(err), String(err)).toBe(true);
      });
    });
  });
}
