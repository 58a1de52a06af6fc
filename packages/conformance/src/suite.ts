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
  /**
   * Removes everything the test wrote (a fresh root or random prefix per target keeps tests apart).
   * Runs before `client.close()`, so it may use the client; it runs even when the test failed or
   * timed out.
   */
  cleanup?: () => void | Promise<void>;
  /**
   * Another client on the same storage, root and prefix as `client` (a new instance, as another
   * process would make). With it, the suite checks that what one client writes is really stored:
   * the other reads and deletes it. Without it, that test is skipped. The suite closes it.
   */
  second?: () => Promise<ReplicaClient>;
}

/** Tunables for slow or constrained storage. Defaults follow the contract's own numbers. */
export interface ConformanceOptions {
  /** Size of the large round-trip body, in bytes (default 64 MiB). */
  largeBodyBytes?: number;
  /**
   * Keys written to test listing across pages and batch delete (default 1100, past S3's 1000-key
   * pages and delete batches; at least 1001).
   */
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

async function rejection(p: Promise<unknown>, what = 'the operation'): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error(`expected ${what} to reject, but it resolved`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
  if (!(Number.isInteger(manyKeys) && manyKeys > 1000)) {
    // Fewer would pass a client that loses keys past the first page or the first delete batch.
    throw new RangeError(`ConformanceOptions.manyKeys must be more than 1000 (S3's page and delete batch size), got ${manyKeys}`);
  }

  const test = (title: string, fn: (client: ReplicaClient, ctx: TestContext, target: ConformanceTarget) => Promise<void>) =>
    it(
      title,
      async (ctx) => {
        const target = await factory();
        // Registered before the test runs, so it runs after a failure or a timeout too. Cleanup
        // first: it may use the client, which close() may make unusable.
        ctx.onTestFinished(async () => {
          try {
            await target.cleanup?.();
          } finally {
            await target.client.close?.();
          }
        });
        await fn(target.client, ctx, target);
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

      test('makes a put visible whole or not at all, to readers and listings while it runs', async (client) => {
        const old = pseudoRandom(3000, 4);
        await client.put('atomic/old', old);
        const body = pseudoRandom(2 * 64 * 1024, 5);
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let halfway!: () => void;
        const reachedHalf = new Promise<void>((r) => (halfway = r));
        async function* slow() {
          yield body.subarray(0, 64 * 1024);
          halfway();
          await held;
          yield body.subarray(64 * 1024);
        }
        const puts = [client.put('atomic/new', slow()), client.put('atomic/old', chunks(body))];
        try {
          await reachedHalf;
          await sleep(50);
          // Half of atomic/new has been handed over: it is not there yet, or there whole.
          const during = await client.open('atomic/new').then(readAll, (err: unknown) => err);
          if (Buffer.isBuffer(during)) expect(during.equals(body), 'atomic/new read during its put: neither absent nor whole').toBe(true);
          else expect(NotFoundError.isInstance(during), `atomic/new during its put: ${String(during)}`).toBe(true);
          for (const e of await keysOf(client, 'atomic/')) {
            expect(e.type === 'object' && [old.length, body.length].includes(e.size), `${e.key} listed with a partial size`).toBe(true);
          }
        } finally {
          release();
        }
        await Promise.all(puts);
        expect((await readAll(await client.open('atomic/new'))).equals(body)).toBe(true);
        expect((await readAll(await client.open('atomic/old'))).equals(body)).toBe(true);
      });

      test('stores objects where another client on the same storage finds them', async (client, ctx, target) => {
        if (!target.second) ctx.skip('the target gives no second client (ConformanceTarget.second)');
        const other = await target.second!();
        try {
          const body = pseudoRandom(5000, 6);
          await client.put('shared/a', body);
          await client.put('shared/b', Buffer.from('b'));
          expect((await readAll(await other.open('shared/a'))).equals(body), 'the other client read different bytes').toBe(true);
          expect((await keysOf(other, 'shared/')).map((e) => e.key)).toEqual(['shared/a', 'shared/b']);
          await other.delete(['shared/a']);
          const gone = await rejection(client.open('shared/a'), 'open of a key the other client deleted');
          expect(NotFoundError.isInstance(gone), `open of a key the other client deleted: want NotFoundError, got ${String(gone)}`).toBe(true);
          expect((await keysOf(client, 'shared/')).map((e) => e.key)).toEqual(['shared/b']);
        } finally {
          await other.close?.();
        }
      });

      test('rejects opening a missing key with NotFoundError', async (client) => {
        await client.put('present/a', Buffer.from('x'));
        for (const key of ['present/b', 'absent/a', 'present']) {
          const err = await rejection(client.open(key), `open of the missing key ${key}`);
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
        // A start past the end gives no byte (and no error).
        expect((await readAll(await client.open('range/k', { range: { start: 20_000 } }))).length).toBe(0);
        for (const range of [{ start: 20, end: 10 }, { start: -1 }, { start: 1.5 }, { start: 0, end: Number.NaN }]) {
          const err = await rejection(client.open('range/k', { range }), `open of range/k with range ${JSON.stringify(range)}`);
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
        expect(await rejection(client.put('failing/k', failing()), 'put of a body that fails'), 'put rejects with the body\'s own error').toBe(boom);
        expect((await readAll(await client.open('failing/k'))).equals(before)).toBe(true);
        const fresh = await rejection(client.put('failing/new', failing()), 'put of a new key whose body fails');
        expect(fresh).toBe(boom);
        const none = await rejection(client.open('failing/new'), 'open of a key whose put failed');
        expect(NotFoundError.isInstance(none), `open of a key whose put failed: want NotFoundError, got ${String(none)}`).toBe(true);
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

      test('lists every object for an empty prefix', async (client) => {
        for (const k of ['a/1', 'b/2/3', 'c']) await client.put(k, Buffer.from(k));
        expect((await keysOf(client, '')).map((e) => e.key)).toEqual(['a/1', 'b/2/3', 'c']);
      });

      test('matches prefixes as plain strings and sorts by key bytes', async (client) => {
        // No key is also a directory of others ('p/a' beside 'p/a/b'): the contract lets clients refuse that.
        // Byte order, not JavaScript's UTF-16 order or a locale's: 'B' < 'a', U+FF61 < U+1F600.
        const keys = ['p/a-b', 'p/a/b', 'p/a0', 'p/ab/c/d', 'p/b', 'p/é', 'q/a', 'p/a/c/d', 'p/B', 'p/\u{1F600}', 'p/\uFF61'];
        await Promise.all(keys.map((k, i) => client.put(k, pseudoRandom(i + 1, i + 1))));
        const all = (await keysOf(client, 'p/')).map((e) => e.key);
        expect(all).toEqual(keys.filter((k) => k.startsWith('p/')).sort(compareKeys));
        expect(all.slice(0, 2)).toEqual(['p/B', 'p/a-b']);
        expect(all.slice(-3)).toEqual(['p/é', 'p/\uFF61', 'p/\u{1F600}']);
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

      test('keeps an object’s timestamp across listings, and gives an overwrite a later one', async (client) => {
        const res = client.capabilities.timestampResolutionMs;
        const first = await client.put('ts/k', Buffer.from('1'));
        const listedFirst = (await keysOf(client, 'ts/k'))[0];
        await sleep(res + 20);
        // The time the object was stored, not the time of the listing.
        const listedAgain = (await keysOf(client, 'ts/k'))[0];
        expect(listedAgain?.type === 'object' && listedAgain.createdAt.getTime(), 'a later listing gave another timestamp').toBe(
          listedFirst?.type === 'object' && listedFirst.createdAt.getTime(),
        );
        const second = await client.put('ts/k', Buffer.from('2'));
        // Stored more than the declared resolution later: a later timestamp.
        expect(second.createdAt.getTime(), `overwrite ${res + 20} ms later, at timestampResolutionMs ${res}`).toBeGreaterThan(first.createdAt.getTime());
        // Listings may be finer than what put returns (an S3 HEAD gives whole seconds, a listing milliseconds).
        const [e] = await keysOf(client, 'ts/k');
        expect(e?.type === 'object' && Math.abs(e.createdAt.getTime() - second.createdAt.getTime())).toBeLessThanOrEqual(res);
        expect(e?.type === 'object' && e.createdAt.getTime()).toBeGreaterThan(first.createdAt.getTime());
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

      test(`lists ${manyKeys} keys sorted across pages, stops when aborted, and deletes them in one batch`, async (client) => {
        const keys = Array.from({ length: manyKeys }, (_, i) => `many/${(i * 7919) % 3 === 0 ? 'x' : 'y'}/${((i * 2654435761) >>> 0).toString(36)}-${i}`);
        for (let i = 0; i < keys.length; i += 50) {
          await Promise.all(keys.slice(i, i + 50).map((k) => client.put(k, Buffer.from(k))));
        }
        const listed = (await keysOf(client, 'many/')).map((e) => e.key);
        expect(listed).toEqual([...keys].sort(compareKeys));
        if (client.capabilities.listDelimiter) {
          // One entry per common prefix, however many pages of keys lie below it.
          expect((await keysOf(client, 'many/', '/')).map((e) => [e.type, e.key])).toEqual([
            ['prefix', 'many/x/'],
            ['prefix', 'many/y/'],
          ]);
        }
        // An abort during a listing ends it with an AbortError, within the page being read.
        const ac = new AbortController();
        let read = 0;
        const err = await rejection(
          (async () => {
            for await (const _ of client.list('many/', { signal: ac.signal })) if (++read === 1) ac.abort();
          })(),
          'a listing aborted after its first entry',
        );
        expect(isAbortError(err), String(err)).toBe(true);
        expect(read, 'entries read after the abort').toBeLessThanOrEqual(1000);
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
        const deleted = await rejection(client.open('del/a'), 'open of a deleted key');
        expect(NotFoundError.isInstance(deleted), `open of a deleted key: want NotFoundError, got ${String(deleted)}`).toBe(true);
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
        const invalid = ['', '/abs', '../escape', 'a/../../escape', 'a//b', 'a/', 'x.tmp', 'a\\b', 'a/./b', 'a/\u0001b', `k/${'x'.repeat(1100)}`];
        for (const key of invalid) {
          const name = JSON.stringify(key.length > 40 ? `${key.slice(0, 20)}…(${key.length} chars)` : key);
          expect(InvalidKeyError.isInstance(await rejection(client.put(key, Buffer.from('x')), `put ${name}`)), `put ${name}`).toBe(true);
          expect(InvalidKeyError.isInstance(await rejection(client.open(key), `open ${name}`)), `open ${name}`).toBe(true);
          expect(InvalidKeyError.isInstance(await rejection(client.delete([key]), `delete ${name}`)), `delete ${name}`).toBe(true);
        }
        for (const prefix of ['../', '/abs', 'a//', 'a/\u0001']) {
          expect(InvalidKeyError.isInstance(await rejection(keysOf(client, prefix), `list ${JSON.stringify(prefix)}`)), `list ${JSON.stringify(prefix)}`).toBe(true);
        }
        expect(await keysOf(client, '')).toEqual([]);
        // Every key is checked before storage is touched: nothing of a batch with a bad key goes.
        await client.put('keep/me', Buffer.from('x'));
        const refused = await rejection(client.delete(['keep/me', '../evil']), 'a delete with one invalid key');
        expect(InvalidKeyError.isInstance(refused), `a delete with one invalid key: want InvalidKeyError, got ${String(refused)}`).toBe(true);
        expect((await keysOf(client, '')).map((e) => e.key)).toEqual(['keep/me']);
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
        expect(isAbortError(await rejection(client.put('abort/new', Buffer.from('x'), { signal }), 'put with an aborted signal')), 'put').toBe(true);
        expect(isAbortError(await rejection(client.open('abort/keep', { signal }), 'open with an aborted signal')), 'open').toBe(true);
        expect(isAbortError(await rejection(client.delete(['abort/keep'], { signal }), 'delete with an aborted signal')), 'delete').toBe(true);
        expect(
          isAbortError(await rejection((async () => { for await (const _ of client.list('abort/', { signal })); })(), 'list with an aborted signal')),
          'list',
        ).toBe(true);
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
        const err = await rejection(client.put('abort/k', slow(), { signal: ac.signal }), 'put aborted while its body is read');
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
          'a read aborted after its first chunk',
        );
        expect(isAbortError(err), String(err)).toBe(true);
      });
    });
  });
}
