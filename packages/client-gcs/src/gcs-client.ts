import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IdempotencyStrategy, Storage, type Bucket, type File, type StorageOptions } from '@google-cloud/storage';
import {
  AccessDeniedError,
  BodyError,
  DeleteFailedError,
  InvalidArgumentError,
  LstreamError,
  PartReader,
  ResumingReadStream,
  TransientError,
  abortReason,
  assertValidKey,
  assertValidRange,
  assertValidPrefix,
  backoffDelay,
  compareKeys,
  raceAbort,
  relativeKey,
  sleep,
  throwIfAborted,
  type ClientCapabilities,
  type ListEntry,
  type ListOptions,
  type ObjectInfo,
  type OpenOptions,
  type PutOptions,
  type ReplicaClient,
} from '@ls/core';
import { httpStatus, isTransientGcsError, mapGcsError, sanitizeCause, type GcsOperation } from './errors.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Resumable upload chunks must be multiples of this (GCS's rule). */
const CHUNK_GRANULARITY = 256 * KiB;
/** Bodies up to this size go up in one request (default; see `resumableThreshold`). */
export const DEFAULT_RESUMABLE_THRESHOLD = 8 * MiB;
/** Bytes per request of a resumable upload (default; the Go client's 16 MiB). */
export const DEFAULT_UPLOAD_CHUNK_SIZE = 16 * MiB;
/**
 * Retries of one request after a transient failure (default). Fewer and shorter than the SDK's own
 * defaults (5 retries up to 32 s apart, for up to 600 s): whoever calls the client retries too, and
 * says so (a replica logs its failed syncs and retries for as long as it runs, a restore logs each
 * attempt), so the SDK's silent retries only delay that. With them, a listing against a refused
 * connection took 65 s to fail, and a restore whose connection dropped logged nothing for 354 s.
 */
export const DEFAULT_MAX_RETRIES = 3;
/** Longest wait between two of the SDK's retries (default): about 1 s, 2 s, 4 s, at most this, plus jitter. */
export const DEFAULT_MAX_RETRY_DELAY_MS = 8_000;
/** Time after which the SDK stops retrying an operation (default). */
export const DEFAULT_TOTAL_TIMEOUT_MS = 60_000;
/** Deletes in flight at once (default). */
export const DEFAULT_DELETE_CONCURRENCY = 16;
/** Time a download may go without a byte before it counts as dropped (default). */
export const DEFAULT_READ_IDLE_TIMEOUT_MS = 30_000;
/** Time one single-request upload may take before it is abandoned and tried again (default). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/** Options of the GCS client. `bucket` and `path` follow Litestream's replica settings. */
export interface GcsReplicaClientOptions {
  /** Bucket name. */
  bucket: string;
  /** Object name prefix of the replica inside the bucket, without leading or trailing `/` (those are stripped). */
  path?: string | undefined;
  /** Google Cloud project id. Object operations do not need one; default: from the credentials. */
  projectId?: string | undefined;
  /**
   * JSON API endpoint (`https://storage.googleapis.com` by default; an emulator's `http://host:port`).
   * `STORAGE_EMULATOR_HOST` in the environment sets it too (`http://` is assumed without a scheme).
   */
  apiEndpoint?: string | undefined;
  /** Service-account key file. Default: Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud, metadata server). */
  keyFilename?: string | undefined;
  /**
   * Send credentials to a custom `apiEndpoint`. Default: false for an emulator (`STORAGE_EMULATOR_HOST`,
   * or an `http://` endpoint), which needs none, so no credential lookup happens; true otherwise.
   */
  authenticate?: boolean | undefined;
  /** A ready Storage instance (tests, custom auth). The client then uses it as is; its retry settings apply. */
  storage?: Storage | undefined;
  /**
   * Bodies up to this many bytes are buffered and sent in one request, retried whole; larger ones use a
   * resumable upload. Default 8 MiB, or `Infinity` (never resumable) against an emulator: the Firebase
   * emulator finalizes a resumable upload on its first request.
   */
  resumableThreshold?: number | undefined;
  /** Bytes per request of a resumable upload, a multiple of 256 KiB (default 16 MiB). Memory of one put stays near this. */
  uploadChunkSize?: number | undefined;
  /** Retries of one request after a transient failure (default 3; 0 turns retries off; see DEFAULT_MAX_RETRIES). */
  maxRetries?: number | undefined;
  /** Growth of the delay between retries (default 2: about 1 s, 2 s, 4 s, ... plus up to 1 s of jitter). */
  retryDelayMultiplier?: number | undefined;
  /** Longest delay between two retries, in milliseconds (default 8 s; at least 1000, the SDK's shortest delay). */
  maxRetryDelayMs?: number | undefined;
  /** Time after which an operation stops retrying, in milliseconds (default 60 s). */
  totalTimeoutMs?: number | undefined;
  /** Time one single-request upload may take, in milliseconds, before it is tried again (default 60 s). */
  requestTimeoutMs?: number | undefined;
  /** Times a read is resumed after its connection drops mid-body (default 5). */
  readResumes?: number | undefined;
  /** Time a download may go without receiving a byte (while the reader wants more) before it is resumed (default 30 s). */
  readIdleTimeoutMs?: number | undefined;
  /** Objects per listing page (default 1000, GCS's maximum). */
  listPageSize?: number | undefined;
  /** Deletes in flight at once (default 16, 1 to 100). */
  deleteConcurrency?: number | undefined;
}

function intOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`GCS client option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function positiveNumber(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) throw new InvalidArgumentError(`GCS client option ${name} must be a positive number, got ${String(value)}`);
  return value;
}

/** The SDK's retries of a resumable upload wait at least 1 s, and fail every upload when told a shorter maximum. */
function atLeastOneSecond(name: string, ms: number): number {
  if (ms < 1000) throw new InvalidArgumentError(`GCS client option ${name} must be at least 1000 (the SDK waits at least 1 s between retries), got ${ms}`);
  return ms;
}

/** Returns `endpoint` with a scheme (`http://` for emulators given as `host:port`) and no trailing `/`. */
function normalizeEndpoint(endpoint: string, defaultScheme: 'http' | 'https'): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `${defaultScheme}://${endpoint}`;
  return withScheme.replace(/\/+$/, '');
}

/** The JSON API's view of an object, as far as this client reads it. */
interface GcsObjectResource {
  name?: string;
  size?: string | number;
  timeCreated?: string;
  updated?: string;
  md5Hash?: string;
  generation?: string | number;
}

/**
 * Splits a `gs://bucket/path` or `gcs://bucket/path` URL into `bucket` and `path`. Rejects other
 * schemes, a missing bucket, and query strings or fragments (which Litestream's URLs never carry).
 */
export function parseGcsUrl(url: string): { bucket: string; path: string } {
  const m = /^(gs|gcs):\/\/([^/?#]*)(\/[^?#]*)?$/i.exec(url);
  if (!m) throw new InvalidArgumentError(`not a GCS URL (gs://bucket/path or gcs://bucket/path): ${url}`);
  const bucket = m[2]!;
  if (bucket === '') throw new InvalidArgumentError(`GCS URL has no bucket: ${url}`);
  return { bucket, path: (m[3] ?? '').replace(/^\/+|\/+$/g, '') };
}

/**
 * A ReplicaClient on Google Cloud Storage (JSON API, `@google-cloud/storage` 7). Bodies up to
 * `resumableThreshold` go up in one request; larger ones in a resumable upload of `uploadChunkSize`
 * requests, so memory stays bounded and a failed chunk is resent, not the whole body; an object
 * becomes visible whole or not at all. Reads resume after dropped connections, pinned to the
 * generation they started on; listing is lazy; deletes run a few at a time and ignore missing
 * objects. Throttling, 5xx, resets and timeouts are retried with jittered exponential backoff;
 * what still fails comes out as the contract's typed errors, with a message saying what to check.
 */
export class GcsReplicaClient implements ReplicaClient {
  readonly type = 'gcs';
  readonly capabilities: Readonly<ClientCapabilities> = Object.freeze({
    listDelimiter: true,
    // The JSON API deletes one object per request (the SDK has no batch call); `delete` runs several at once.
    deleteMaxBatch: 1,
    rangeRead: true,
    // timeCreated is RFC 3339 with milliseconds.
    timestampResolutionMs: 1,
  });
  /** Bucket name. */
  readonly bucket: string;
  /** Object name prefix of every object, empty or ending in `/`. */
  readonly root: string;
  /** The JSON API endpoint in use. */
  readonly apiEndpoint: string;
  /** True when talking to an emulator (no credentials, single-request uploads by default). */
  readonly emulator: boolean;

  readonly #storage: Storage;
  readonly #bucket: Bucket;
  readonly #threshold: number;
  readonly #chunkSize: number;
  readonly #maxRetries: number;
  readonly #requestTimeoutMs: number;
  readonly #readResumes: number;
  readonly #readIdleTimeoutMs: number;
  readonly #listPageSize: number;
  readonly #deleteConcurrency: number;
  #closed = false;

  constructor(options: GcsReplicaClientOptions) {
    if (typeof options?.bucket !== 'string' || options.bucket === '') throw new InvalidArgumentError('GCS client needs a bucket');
    if (options.bucket.includes('/')) throw new InvalidArgumentError(`GCS bucket name must not contain "/": ${options.bucket}`);
    this.bucket = options.bucket;
    const path = (options.path ?? '').replace(/^\/+|\/+$/g, '');
    if (path !== '') assertValidPrefix(`${path}/`);
    this.root = path === '' ? '' : `${path}/`;

    const emulatorHost = process.env.STORAGE_EMULATOR_HOST;
    const endpoint = options.apiEndpoint
      ? normalizeEndpoint(options.apiEndpoint, 'https')
      : emulatorHost
        ? normalizeEndpoint(emulatorHost, 'http')
        : 'https://storage.googleapis.com';
    this.emulator = options.apiEndpoint ? endpoint.startsWith('http://') : emulatorHost !== undefined && emulatorHost !== '';
    this.apiEndpoint = endpoint;

    this.#maxRetries = intOption('maxRetries', options.maxRetries, DEFAULT_MAX_RETRIES, 0, 100);
    this.#threshold =
      options.resumableThreshold === Infinity
        ? Infinity
        : intOption('resumableThreshold', options.resumableThreshold, this.emulator ? Infinity : DEFAULT_RESUMABLE_THRESHOLD, 0, Number.MAX_SAFE_INTEGER);
    this.#chunkSize = intOption('uploadChunkSize', options.uploadChunkSize, DEFAULT_UPLOAD_CHUNK_SIZE, CHUNK_GRANULARITY, 1024 * MiB);
    if (this.#chunkSize % CHUNK_GRANULARITY !== 0) {
      throw new InvalidArgumentError(`GCS client option uploadChunkSize must be a multiple of 256 KiB, got ${this.#chunkSize}`);
    }
    this.#requestTimeoutMs = intOption('requestTimeoutMs', options.requestTimeoutMs, DEFAULT_REQUEST_TIMEOUT_MS, 1, 24 * 3600_000);
    this.#readResumes = intOption('readResumes', options.readResumes, 5, 0, 100);
    this.#readIdleTimeoutMs = intOption('readIdleTimeoutMs', options.readIdleTimeoutMs, DEFAULT_READ_IDLE_TIMEOUT_MS, 1, 3600_000);
    this.#listPageSize = intOption('listPageSize', options.listPageSize, 1000, 1, 1000);
    this.#deleteConcurrency = intOption('deleteConcurrency', options.deleteConcurrency, DEFAULT_DELETE_CONCURRENCY, 1, 100);

    this.#storage = options.storage ?? this.#buildStorage(options, endpoint, emulatorHost);
    this.#bucket = this.#storage.bucket(this.bucket);
  }

  #buildStorage(o: GcsReplicaClientOptions, endpoint: string, emulatorHost: string | undefined): Storage {
    const retries = this.#maxRetries;
    const config: StorageOptions = {
      apiEndpoint: endpoint,
      ...(o.projectId ? { projectId: o.projectId } : {}),
      ...(o.keyFilename ? { keyFilename: o.keyFilename } : {}),
      // The SDK skips authentication for any custom endpoint unless told otherwise: right for an
      // emulator (no ADC lookup at all), wrong for a private https endpoint of real GCS.
      useAuthWithCustomEndpoint: o.authenticate ?? !this.emulator,
      retryOptions: {
        // The SDK reads maxRetries 0 as "default"; autoRetry false is how retries are turned off.
        autoRetry: retries > 0,
        maxRetries: Math.max(1, retries),
        retryDelayMultiplier: positiveNumber('retryDelayMultiplier', o.retryDelayMultiplier, 2),
        maxRetryDelay: atLeastOneSecond('maxRetryDelayMs', positiveNumber('maxRetryDelayMs', o.maxRetryDelayMs, DEFAULT_MAX_RETRY_DELAY_MS)) / 1000,
        totalTimeout: positiveNumber('totalTimeoutMs', o.totalTimeoutMs, DEFAULT_TOTAL_TIMEOUT_MS) / 1000,
        retryableErrorFn: isTransientGcsError,
        // RetryAlways, not the default RetryConditional: under RetryConditional the SDK retries
        // uploads and deletes only with an `ifGenerationMatch` precondition, so every transient
        // error of a put would fail it. Retrying them unconditionally is safe here: the replica
        // layout writes each key once with one body (a retried put stores the same bytes again; a
        // snapshot written twice at one index holds the same database position), and a retried
        // delete that finds the object gone is what `delete` wants anyway (404s are ignored). With
        // RetryAlways the SDK also never flips its shared `retryOptions.autoRetry` off and on around
        // conditional calls, which races between concurrent operations.
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
      },
    };
    const storage = new Storage(config);
    // With STORAGE_EMULATOR_HOST set, the SDK uses the variable verbatim as the JSON API base URL,
    // which breaks for the common `host:port` form without a scheme.
    if (emulatorHost && !o.apiEndpoint && !/^[a-z][a-z0-9+.-]*:\/\//i.test(emulatorHost)) {
      (storage as unknown as { baseUrl: string }).baseUrl = `${endpoint}/storage/v1`;
    }
    return storage;
  }

  #url(key: string): string {
    return `gs://${this.bucket}/${this.root}${key}`;
  }

  #checkOpen(): void {
    if (this.#closed) throw new LstreamError('ECLOSED', `GCS client for gs://${this.bucket}/${this.root} is closed`);
  }

  #fail(err: unknown, op: GcsOperation, signal: AbortSignal | undefined): unknown {
    if (err instanceof BodyError) return err.error;
    return mapGcsError(err, op, signal);
  }

  async put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, options: PutOptions = {}): Promise<ObjectInfo> {
    assertValidKey(key);
    const { signal } = options;
    throwIfAborted(signal);
    this.#checkOpen();
    const op: GcsOperation = { permission: 'storage.objects.create', what: `writing ${this.#url(key)}`, key };
    let reader: PartReader | undefined;
    try {
      if (body instanceof Uint8Array) {
        const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
        if (buf.length <= this.#threshold) return await this.#putSingle(key, buf, signal);
        return await this.#putResumable(key, slices(buf, this.#chunkSize), signal);
      }
      reader = new PartReader(body, signal);
      // One byte past the threshold tells a body that fits from one that does not.
      const first = await reader.next(this.#threshold === Infinity ? Infinity : this.#threshold + 1);
      if (first.length <= this.#threshold) return await this.#putSingle(key, first, signal);
      return await this.#putResumable(key, streamChunks(reader, first, this.#chunkSize), signal);
    } catch (err) {
      reader?.close();
      throw this.#fail(err, op, signal);
    }
  }

  /**
   * Sends `buf` in one multipart request (metadata and bytes together, so GCS checks the MD5 and
   * stores all or nothing), retrying the whole request after transient failures. The SDK never
   * retries a streamed request body, so these retries are the client's own.
   */
  async #putSingle(key: string, buf: Buffer, signal: AbortSignal | undefined): Promise<ObjectInfo> {
    const md5 = createHash('md5').update(buf).digest('base64');
    for (let attempt = 0; ; attempt++) {
      throwIfAborted(signal);
      const file = this.#bucket.file(this.root + key);
      // The SDK's `timeout` does not cut short a request whose server stopped answering (seen with
      // a stopped emulator: no answer for 10 minutes): each attempt gets its own deadline.
      const deadline = stallDeadline(this.#requestTimeoutMs, signal);
      try {
        const ws = file.createWriteStream({
          resumable: false,
          validation: false,
          timeout: this.#requestTimeoutMs,
          metadata: { contentType: 'application/octet-stream', md5Hash: md5 },
        });
        await pipeline(Readable.from([buf]), ws, { signal: deadline.signal });
        return this.#stored(key, file.metadata as GcsObjectResource, buf.length, md5);
      } catch (err) {
        if (signal?.aborted) throw abortReason(signal);
        const timedOut = deadline.stalled();
        if (attempt >= this.#maxRetries || !(timedOut || isTransientGcsError(err))) {
          throw timedOut ? new TransientError(`writing ${this.#url(key)}: no answer within ${this.#requestTimeoutMs} ms`, { cause: err }) : err;
        }
        await sleep(backoffDelay(attempt), signal).catch(() => throwIfAborted(signal));
      } finally {
        deadline.end();
      }
    }
  }

  /**
   * Streams `chunks` into a resumable upload session, `uploadChunkSize` bytes per request. The SDK
   * keeps the chunk in flight and, after a transient failure, asks GCS how much it holds and resends
   * from there. The object appears when the last chunk is in; an abandoned session never does.
   */
  async #putResumable(key: string, chunks: AsyncIterable<Buffer>, signal: AbortSignal | undefined): Promise<ObjectInfo> {
    const file = this.#bucket.file(this.root + key);
    const md5 = createHash('md5');
    let size = 0;
    // The SDK asks for the next bytes once a chunk is in: a session that asks for nothing (and does
    // not finish) for requestTimeoutMs is stuck on a server that stopped answering, which the SDK
    // itself would wait on forever. It is given up, and the caller's retry starts a new one.
    const deadline = stallDeadline(this.#requestTimeoutMs, signal);
    async function* counted() {
      for await (const c of chunks) {
        md5.update(c);
        size += c.length;
        deadline.progress();
        yield c;
      }
    }
    const ws = file.createWriteStream({
      resumable: true,
      chunkSize: this.#chunkSize,
      validation: false,
      metadata: { contentType: 'application/octet-stream' },
    });
    try {
      await pipeline(Readable.from(counted()), ws, { signal: deadline.signal });
    } catch (err) {
      if (deadline.stalled()) {
        throw new TransientError(`writing ${this.#url(key)}: the resumable upload made no progress for ${this.#requestTimeoutMs} ms`, { cause: err });
      }
      throw err;
    } finally {
      deadline.end();
    }
    return this.#stored(key, file.metadata as GcsObjectResource, size, md5.digest('base64'));
  }

  /** Returns the ObjectInfo of a finished upload, after checking GCS stored what was sent. */
  #stored(key: string, meta: GcsObjectResource, size: number, md5: string): ObjectInfo {
    const stored = Number(meta.size);
    if (stored !== size || (meta.md5Hash !== undefined && meta.md5Hash !== md5)) {
      throw new TransientError(
        `writing ${this.#url(key)}: the stored object (${String(meta.size)} bytes, md5 ${String(meta.md5Hash)}) differs from what was sent (${size} bytes, md5 ${md5}); write it again`,
      );
    }
    return { key, size, createdAt: createdAt(meta) };
  }

  async open(key: string, options: OpenOptions = {}): Promise<Readable> {
    assertValidKey(key);
    const { signal, range } = options;
    throwIfAborted(signal);
    this.#checkOpen();
    assertValidRange(range, this.#url(key));
    const op: GcsOperation = { permission: 'storage.objects.get', what: `reading ${this.#url(key)}`, key, notFound: true };
    try {
      const objectName = this.root + key;
      let first;
      try {
        first = await this.#request(this.#bucket.file(objectName), range?.start, range?.end, signal);
      } catch (err) {
        // A range starting at or past the end: the object exists and the range holds no byte.
        if (range && httpStatus(err) === 416) return Readable.from([]);
        throw err;
      }
      const start = range?.start ?? 0;
      const end = Math.min(range?.end ?? Infinity, first.total - 1);
      if (end < start) {
        first.body.on('error', () => {});
        first.body.destroy();
        return Readable.from([]);
      }
      const generation = first.generation;
      return new ResumingReadStream(
        { body: first.body, bodyStart: first.bodyStart, start, end },
        {
          signal,
          // The SDK's HTTP layer (node-fetch 2) never ends or fails a body whose connection drops
          // before Content-Length bytes arrived: without an idle timeout such a read would wait forever.
          idleTimeoutMs: this.#readIdleTimeoutMs,
          maxResumes: this.#readResumes,
          isRetryable: isTransientGcsError,
          mapError: (err) => this.#fail(err, op, signal),
          fetch: async (r, fetchSignal) => {
            // Pinned to the generation the read started on: a replaced object is not stitched together.
            const pinned = this.#bucket.file(objectName, generation ? { generation } : {});
            try {
              const again = await this.#request(pinned, r.start, r.end, fetchSignal);
              return { body: again.body, start: again.bodyStart };
            } catch (err) {
              if (httpStatus(err) === 404) {
                throw new TransientError(`reading ${this.#url(key)}: the object was replaced or deleted while being read; read it again`, { cause: sanitizeCause(err) });
              }
              throw err;
            }
          },
        },
      );
    } catch (err) {
      throw this.#fail(err, op, signal);
    }
  }

  /**
   * Starts a media download and resolves once the response headers are in, so a missing object
   * rejects before any byte is read. The SDK retries the request (5xx, throttling, resets) until
   * a response arrives; a body that breaks afterwards is the caller's to resume.
   */
  #request(
    file: File,
    start: number | undefined,
    end: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ body: Readable; bodyStart: number; total: number; generation: string | undefined }> {
    throwIfAborted(signal);
    const stream = file.createReadStream({
      validation: false,
      decompress: false,
      ...(start !== undefined ? { start } : {}),
      ...(end !== undefined ? { end } : {}),
    });
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        stream.off('response', onResponse);
        stream.off('error', onError);
        signal?.removeEventListener('abort', onAbort);
      };
      const fail = (err: unknown) => {
        cleanup();
        stream.on('error', () => {});
        stream.destroy();
        reject(err);
      };
      const onError = (err: unknown) => fail(err);
      const onAbort = () => fail(abortReason(signal!));
      const onResponse = (res: { statusCode?: number; headers?: Record<string, string | string[] | undefined> }) => {
        const status = res.statusCode ?? 0;
        // Error answers: the SDK reads their body and destroys the stream with an ApiError.
        if (status < 200 || status >= 300) return;
        cleanup();
        const h = res.headers ?? {};
        const header = (name: string) => {
          const v = h[name];
          return Array.isArray(v) ? v[0] : v;
        };
        const m = /bytes (\d+)-(\d+)\/(\d+|\*)/.exec(header('content-range') ?? '');
        // Servers that ignore Range (the emulator, for a range past the end) answer 200 with the whole object.
        const bodyStart = status === 206 && m ? Number(m[1]) : 0;
        const total = m && m[3] !== '*' ? Number(m[3]) : bodyStart + Number(header('content-length') ?? 0);
        resolve({ body: stream, bodyStart, total, generation: header('x-goog-generation') });
      };
      stream.on('response', onResponse);
      stream.on('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
      // The SDK sends the request on the stream's first read; read(0) asks without consuming.
      stream.read(0);
    });
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<ListEntry> {
    assertValidPrefix(prefix);
    const { signal, delimiter } = options;
    throwIfAborted(signal);
    this.#checkOpen();
    const op: GcsOperation = { permission: 'storage.objects.list', what: `listing ${this.#url(prefix)}` };
    const full = this.root + prefix;
    /** Common prefixes seen but not yet yielded, and those yielded. */
    const pending = new Set<string>();
    const yielded = new Set<string>();
    let last: string | undefined;
    let pageToken: string | undefined;
    for (;;) {
      throwIfAborted(signal);
      let resp: { items?: GcsObjectResource[]; prefixes?: string[]; nextPageToken?: string };
      try {
        const out = await raceAbort(
          this.#bucket.getFiles({
            prefix: full,
            maxResults: this.#listPageSize,
            autoPaginate: false,
            ...(delimiter ? { delimiter } : {}),
            ...(pageToken ? { pageToken } : {}),
          }),
          signal,
        );
        resp = (out[2] ?? {}) as typeof resp;
      } catch (err) {
        throw this.#fail(err, op, signal);
      }
      const entries: ListEntry[] = [];
      for (const o of resp.items ?? []) {
        const key = relativeKey(this.root, o.name);
        if (key === undefined) continue;
        entries.push({ type: 'object', key, size: Number(o.size ?? 0), createdAt: createdAt(o) });
      }
      for (const p of resp.prefixes ?? []) {
        if (!p.startsWith(full)) continue;
        const key = p.slice(this.root.length);
        if (!yielded.has(key)) pending.add(key);
      }
      const next = resp.nextPageToken || undefined;
      // A page's common prefixes may run past its last object (the emulator sends every prefix with
      // the first page): hold back those beyond it until a later page, or the last, reaches them.
      const objectKeys = entries.map((e) => e.key).sort(compareKeys);
      const bound = next && objectKeys.length > 0 ? objectKeys.at(-1) : undefined;
      for (const key of pending) {
        if (bound !== undefined && compareKeys(key, bound) > 0) continue;
        entries.push({ type: 'prefix', key });
        pending.delete(key);
        yielded.add(key);
      }
      entries.sort((a, b) => compareKeys(a.key, b.key));
      for (const e of entries) {
        // Never go back: a page token that no longer matches (the emulator's tokens name the next
        // object; deleting it meanwhile restarts the listing) must not yield keys twice.
        if (last !== undefined && compareKeys(e.key, last) <= 0) continue;
        last = e.key;
        yield e;
      }
      if (!next) return;
      if (next === pageToken) throw new LstreamError('EGCS', `${op.what}: the server repeated a page token`);
      pageToken = next;
    }
  }

  /**
   * Deletes `keys`, `deleteConcurrency` at a time, one request each (retried by the SDK after
   * transient failures); missing objects are fine. Access denied or a missing bucket stops at once
   * and rejects with that error, since every other key would fail the same way; other failures
   * are collected into one DeleteFailedError naming each key.
   */
  async delete(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    for (const k of keys) assertValidKey(k);
    const { signal } = options;
    throwIfAborted(signal);
    this.#checkOpen();
    if (keys.length === 0) return;
    const unique = [...new Set(keys)];
    const failures: { key: string; error: unknown }[] = [];
    let fatal: { error: unknown } | undefined;
    let next = 0;
    const worker = async () => {
      while (next < unique.length && !fatal) {
        if (signal?.aborted) {
          fatal ??= { error: abortReason(signal) };
          return;
        }
        const key = unique[next++]!;
        try {
          await raceAbort(this.#bucket.file(this.root + key).delete({ ignoreNotFound: true }), signal);
        } catch (err) {
          const mapped = this.#fail(err, { permission: 'storage.objects.delete', what: `deleting ${this.#url(key)}`, key }, signal);
          if (signal?.aborted || AccessDeniedError.isInstance(mapped) || (LstreamError.isInstance(mapped) && mapped.code === 'ENOBUCKET')) {
            fatal ??= { error: mapped };
          } else {
            failures.push({ key, error: mapped });
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#deleteConcurrency, unique.length) }, worker));
    if (fatal) throw fatal.error;
    if (failures.length > 0) throw new DeleteFailedError(failures);
  }

  /** Marks the client closed. The SDK holds no handles that need releasing (pooled sockets time out). */
  async close(): Promise<void> {
    this.#closed = true;
  }
}

/** Returns the object's creation time (`timeCreated`, else `updated`), the epoch when GCS sent neither. */
/**
 * A signal for one upload that aborts with the caller's `signal`, or once `ms` pass without a call
 * to `progress` (from now): `stalled()` tells the second case. `end` stops the clock.
 */
function stallDeadline(ms: number, signal: AbortSignal | undefined) {
  const stall = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const progress = () => {
    clearTimeout(timer);
    timer = setTimeout(() => stall.abort(), ms);
    timer.unref();
  };
  progress();
  return {
    signal: signal ? AbortSignal.any([signal, stall.signal]) : stall.signal,
    progress,
    stalled: () => stall.signal.aborted && !signal?.aborted,
    end: () => clearTimeout(timer),
  };
}

function createdAt(meta: GcsObjectResource): Date {
  const t = meta.timeCreated ?? meta.updated;
  return t ? new Date(t) : new Date(0);
}

/** Yields `buf` cut into `size`-byte views. */
async function* slices(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let off = 0; off < buf.length; off += size) yield buf.subarray(off, off + size);
}

/** Yields `first`, then the rest of the body in `size`-byte parts. */
async function* streamChunks(reader: PartReader, first: Buffer, size: number): AsyncGenerator<Buffer> {
  yield first;
  for (;;) {
    const part = await reader.next(size);
    if (part.length === 0) return;
    yield part;
  }
}

/** Creates a GcsReplicaClient from plain options (the fields of a `gcs` replica in the config). */
export function createGcsReplicaClient(options: GcsReplicaClientOptions): GcsReplicaClient {
  return new GcsReplicaClient(options);
}
