import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import {
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
import { errorCode, httpStatus, isTransientS3Error, mapS3Error, type S3Operation, type Secrets } from './errors.js';
import { DEFAULT_REGION, lookupBucketRegion, type RegionSource } from './region.js';

const MiB = 1024 * 1024;
/** S3's smallest part (all but the last). */
const MIN_PART_SIZE = 5 * MiB;
/** S3's most parts per upload. */
const MAX_PARTS = 10_000;
/** S3's most keys per DeleteObjects request. */
const DELETE_BATCH = 1000;
/** Per-key DeleteObjects errors worth another try. */
const RETRYABLE_DELETE_CODES = new Set(['InternalError', 'ServiceUnavailable', 'SlowDown', 'RequestTimeout', 'OperationAborted']);

/** Options of the S3 client. Field names follow Litestream's replica settings. */
export interface S3ReplicaClientOptions {
  /** Bucket name. */
  bucket: string;
  /** Key prefix of the replica inside the bucket, without leading or trailing `/` (those are stripped). */
  path?: string | undefined;
  /**
   * Bucket region. Default, as Litestream v0.3 picks it: `us-east-1` with an endpoint (an
   * S3-compatible service; `AWS_REGION`, meant for AWS, is not used for it); else `AWS_REGION`,
   * `AWS_DEFAULT_REGION`, else looked up with GetBucketLocation.
   */
  region?: string | undefined;
  /** Endpoint of an S3-compatible service (`https://host[:port]`; `https://` is added when no scheme is given). */
  endpoint?: string | undefined;
  /** Address buckets as `endpoint/bucket` instead of `bucket.endpoint`. */
  forcePathStyle?: boolean | undefined;
  /** Accept any TLS certificate from the endpoint (self-signed test servers). */
  skipVerify?: boolean | undefined;
  /** Static access key id; with `secretAccessKey`. Default: `LITESTREAM_ACCESS_KEY_ID` where `AWS_ACCESS_KEY_ID` is not set (as Litestream), else the AWS default chain. */
  accessKeyId?: string | undefined;
  /** Static secret access key; with `accessKeyId`. Default: `LITESTREAM_SECRET_ACCESS_KEY`, else the AWS default chain. */
  secretAccessKey?: string | undefined;
  /** Session token of temporary static credentials. */
  sessionToken?: string | undefined;
  /**
   * Look the region up with GetBucketLocation even though an endpoint is set (S3-compatible
   * services that report their region). Default false: with an endpoint, the region is us-east-1.
   */
  detectRegion?: boolean | undefined;
  /** A ready S3Client (tests, custom middleware). The client then uses it as is and never destroys it. */
  s3Client?: S3Client | undefined;
  /** Size of multipart upload parts in bytes (default 8 MiB, at least 5 MiB). */
  partSize?: number | undefined;
  /** Parts uploaded at once (default 3, 1 to 16). Memory of one put stays near (this + 1) × partSize. */
  uploadConcurrency?: number | undefined;
  /** Attempts per request, including the first, for throttling, 5xx and network errors (default 5). */
  maxAttempts?: number | undefined;
  /** The SDK's retry mode (default `standard`: exponential backoff with full jitter). */
  retryMode?: 'standard' | 'adaptive' | undefined;
  /** Time allowed to open a connection, in milliseconds (default 10 s). */
  connectTimeoutMs?: number | undefined;
  /** Time a connection may stay silent mid-request before the request is retried (default 30 s). */
  idleTimeoutMs?: number | undefined;
  /** Times a read is resumed after its connection drops mid-body (default 5). */
  readResumes?: number | undefined;
  /** Keys per ListObjectsV2 page (default 1000, S3's maximum). */
  listPageSize?: number | undefined;
  /** Environment to read `LITESTREAM_*` and `AWS_*REGION` from (default `process.env`). */
  env?: Record<string, string | undefined> | undefined;
}

const noopLogger = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

function positiveInt(name: string, value: number | undefined, fallback: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`S3 client option ${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

function normalizeEndpoint(endpoint: string | undefined): string | undefined {
  if (endpoint === undefined || endpoint === '') return undefined;
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `https://${endpoint}`;
}

/**
 * A ReplicaClient on Amazon S3 or an S3-compatible service. Small bodies go up with one PutObject;
 * bodies larger than one part as a multipart upload with bounded memory, aborted on failure, so an
 * object is visible whole or not at all. Reads resume after dropped connections; listing is lazy;
 * deletes use DeleteObjects in batches of 1000. The SDK retries throttling, 5xx and network errors
 * with jittered backoff; what still fails comes out as the contract's typed errors. The region is
 * found lazily on first use (see `S3ReplicaClientOptions.region`).
 */
export class S3ReplicaClient implements ReplicaClient {
  readonly type = 's3';
  readonly capabilities: Readonly<ClientCapabilities> = Object.freeze({
    listDelimiter: true,
    deleteMaxBatch: DELETE_BATCH,
    rangeRead: true,
    timestampResolutionMs: 1000,
  });
  /** Bucket name. */
  readonly bucket: string;
  /** Key prefix of every object, empty or ending in `/`. */
  readonly root: string;

  readonly #options: S3ReplicaClientOptions;
  readonly #env: Record<string, string | undefined>;
  readonly #endpoint: string | undefined;
  readonly #secrets: Secrets;
  readonly #partSize: number;
  readonly #concurrency: number;
  readonly #maxAttempts: number;
  readonly #readResumes: number;
  readonly #listPageSize: number;
  readonly #given: S3Client | undefined;
  #ready: Promise<S3Client> | undefined;
  #built: S3Client | undefined;
  #region: { region: string; source: RegionSource } | undefined;
  #closed = false;

  constructor(options: S3ReplicaClientOptions) {
    if (typeof options?.bucket !== 'string' || options.bucket === '') throw new InvalidArgumentError('S3 client needs a bucket');
    if (options.bucket.includes('/')) throw new InvalidArgumentError(`S3 bucket name must not contain "/": ${options.bucket}`);
    if ((options.accessKeyId ? 1 : 0) + (options.secretAccessKey ? 1 : 0) === 1) {
      throw new InvalidArgumentError('S3 client needs both accessKeyId and secretAccessKey, or neither');
    }
    this.#options = options;
    this.#env = options.env ?? process.env;
    this.bucket = options.bucket;
    const path = (options.path ?? '').replace(/^\/+|\/+$/g, '');
    if (path !== '') assertValidPrefix(`${path}/`);
    this.root = path === '' ? '' : `${path}/`;
    this.#endpoint = normalizeEndpoint(options.endpoint);
    this.#partSize = positiveInt('partSize', options.partSize, 8 * MiB, MIN_PART_SIZE, 5 * 1024 * MiB);
    this.#concurrency = positiveInt('uploadConcurrency', options.uploadConcurrency, 3, 1, 16);
    this.#maxAttempts = positiveInt('maxAttempts', options.maxAttempts, 5, 1, 20);
    this.#readResumes = positiveInt('readResumes', options.readResumes, 5, 0, 100);
    this.#listPageSize = positiveInt('listPageSize', options.listPageSize, 1000, 1, 1000);
    const creds = this.#staticCredentials();
    this.#secrets = creds ? [creds.secretAccessKey, creds.accessKeyId, ...(creds.sessionToken ? [creds.sessionToken] : [])] : [];
    this.#given = options.s3Client;
  }

  /**
   * Returns the static credentials in effect: the options', else, when `LITESTREAM_*` are set, the
   * environment's keys as Litestream v0.3 reads them: `LITESTREAM_ACCESS_KEY_ID` and
   * `LITESTREAM_SECRET_ACCESS_KEY` stand in for `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` that
   * are not set, and the AWS variables win where both are. Without `LITESTREAM_*`, undefined: the
   * AWS default chain applies.
   */
  #staticCredentials(): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined {
    const o = this.#options;
    if (o.accessKeyId && o.secretAccessKey) {
      return { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey, ...(o.sessionToken ? { sessionToken: o.sessionToken } : {}) };
    }
    const env = this.#env;
    if (env.LITESTREAM_ACCESS_KEY_ID === undefined && env.LITESTREAM_SECRET_ACCESS_KEY === undefined) return undefined;
    const id = env.AWS_ACCESS_KEY_ID ?? env.LITESTREAM_ACCESS_KEY_ID;
    const secret = env.AWS_SECRET_ACCESS_KEY ?? env.LITESTREAM_SECRET_ACCESS_KEY;
    if (!id || !secret) return undefined;
    // A session token belongs to the AWS key pair: with a LITESTREAM_* key it would not match.
    const token = env.AWS_ACCESS_KEY_ID !== undefined && env.AWS_SECRET_ACCESS_KEY !== undefined ? env.AWS_SESSION_TOKEN : undefined;
    return { accessKeyId: id, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
  }

  /** Returns the SDK configuration for `region` (timeouts, retries, checksums, TLS, credentials). */
  #config(region: string): S3ClientConfig {
    const o = this.#options;
    const creds = this.#staticCredentials();
    return {
      region,
      ...(this.#endpoint ? { endpoint: this.#endpoint } : {}),
      forcePathStyle: o.forcePathStyle ?? false,
      ...(creds ? { credentials: creds } : {}),
      // Only when an operation demands it: the default (aws-chunked bodies with CRC trailers) is
      // stored verbatim, framing and all, by several S3-compatible servers (s3rver among them).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: this.#maxAttempts,
      retryMode: o.retryMode ?? 'standard',
      followRegionRedirects: true,
      logger: noopLogger,
      requestHandler: {
        connectionTimeout: o.connectTimeoutMs ?? 10_000,
        socketTimeout: o.idleTimeoutMs ?? 30_000,
        logger: noopLogger,
        // Our own keep-alive agents: without them the SDK opens a fresh, unpooled connection for
        // every body of 2 MiB or more (its 100-continue path), i.e. for every multipart part.
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 50 }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 50, rejectUnauthorized: !o.skipVerify }),
      },
    };
  }

  /** Resolves with the SDK client, finding the region on first use. A failed lookup is tried again next call. */
  #client(signal: AbortSignal | undefined): Promise<S3Client> {
    if (this.#closed) return Promise.reject(new LstreamError('ECLOSED', `S3 client for s3://${this.bucket}/${this.root} is closed`));
    if (this.#given) return Promise.resolve(this.#given);
    // The lookup is shared by every caller, so it runs to the end (bounded by the SDK's timeouts)
    // whoever aborts; each caller stops waiting on its own signal.
    this.#ready ??= this.#build().then(
      (c) => (this.#built = c),
      (err: unknown) => {
        this.#ready = undefined;
        throw err;
      },
    );
    return signal ? raceAbort(this.#ready, signal) : this.#ready;
  }

  async #build(): Promise<S3Client> {
    const { region, source } = await this.#resolveRegion();
    this.#region = { region, source };
    return new S3Client(this.#config(region));
  }

  async #resolveRegion(): Promise<{ region: string; source: RegionSource }> {
    const o = this.#options;
    if (o.region) return { region: o.region, source: 'configured' };
    if (this.#endpoint && !o.detectRegion) return { region: DEFAULT_REGION, source: 'endpoint-default' };
    const envRegion = this.#env.AWS_REGION || this.#env.AWS_DEFAULT_REGION;
    if (envRegion) return { region: envRegion, source: 'environment' };
    const probe = new S3Client(this.#config(DEFAULT_REGION));
    try {
      const { region, source } = await lookupBucketRegion(probe, this.bucket);
      return { region, source };
    } catch (err) {
      throw mapS3Error(err, { action: 's3:GetBucketLocation', what: `looking up the region of bucket ${this.bucket}` }, this.#secrets);
    } finally {
      probe.destroy();
    }
  }

  /**
   * Resolves with the bucket's region and how it was found (`configured`, `environment`,
   * `endpoint-default`, `GetBucketLocation`, `HeadBucket` or `fallback` after a denied lookup).
   */
  async region(options: { signal?: AbortSignal } = {}): Promise<{ region: string; source: RegionSource }> {
    if (this.#given) {
      const r = await this.#given.config.region();
      return { region: r, source: 'configured' };
    }
    await this.#client(options.signal);
    return this.#region!;
  }

  #url(key: string): string {
    return `s3://${this.bucket}/${this.root}${key}`;
  }

  #fail(err: unknown, op: S3Operation, signal: AbortSignal | undefined): unknown {
    return mapS3Error(err, op, this.#secrets, signal);
  }

  async put(key: string, body: AsyncIterable<Uint8Array> | Uint8Array, options: PutOptions = {}): Promise<ObjectInfo> {
    assertValidKey(key);
    const { signal } = options;
    throwIfAborted(signal);
    const op: S3Operation = { action: 's3:PutObject', what: `writing ${this.#url(key)}`, key };
    // Cancels everything in flight (parts, the read of the body) when the caller aborts or a part fails.
    const ac = new AbortController();
    const onAbort = () => ac.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let reader: PartReader | undefined;
    try {
      const s3 = await this.#client(signal);
      const objectKey = this.root + key;
      if (body instanceof Uint8Array) {
        const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
        if (buf.length <= this.#partSize) return await this.#putSingle(s3, key, buf, signal);
        return await this.#putMultipart(s3, key, objectKey, slices(buf, this.#partSizeFor(buf.length)), ac, signal);
      }
      reader = new PartReader(body, ac.signal);
      const first = await reader.next(this.#partSize);
      if (first.length < this.#partSize) return await this.#putSingle(s3, key, first, signal);
      const second = await reader.next(this.#partSize);
      if (second.length === 0) return await this.#putSingle(s3, key, first, signal);
      const partSize = this.#partSizeFor(options.size);
      return await this.#putMultipart(s3, key, objectKey, streamParts(reader, [first, second], partSize), ac, signal);
    } catch (err) {
      reader?.close();
      if (err instanceof BodyError) throw err.error;
      throw this.#fail(err, op, signal);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Returns the part size for a body of `size` bytes: the configured one, larger when 10,000 parts would not hold it. */
  #partSizeFor(size: number | undefined): (partNumber: number) => number {
    const base = size !== undefined && size > 0 ? Math.max(this.#partSize, Math.ceil(size / (MAX_PARTS - 100))) : this.#partSize;
    // Past 8000 parts (a body longer than its size hint, or of unknown size) the part size doubles
    // every 500 parts, so 10,000 parts hold ~180 GiB at 8 MiB; memory grows only for such bodies.
    return (n) => (n <= 8000 ? base : base * 2 ** Math.ceil((n - 8000) / 500));
  }

  async #putSingle(s3: S3Client, key: string, body: Buffer, signal: AbortSignal | undefined): Promise<ObjectInfo> {
    const out = await s3.send(
      new PutObjectCommand({ Bucket: this.bucket, Key: this.root + key, Body: body, ContentLength: body.length }),
      { abortSignal: signal },
    );
    return this.#stat(s3, key, out.ETag, body.length, signal);
  }

  async #putMultipart(
    s3: S3Client,
    key: string,
    objectKey: string,
    parts: AsyncIterable<Buffer>,
    ac: AbortController,
    signal: AbortSignal | undefined,
  ): Promise<ObjectInfo> {
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal: ac.signal });
    const uploadId = created.UploadId;
    if (!uploadId) throw new LstreamError('ES3', `writing ${this.#url(key)}: CreateMultipartUpload returned no UploadId`);
    const completed: CompletedPart[] = [];
    const inflight = new Set<Promise<void>>();
    const wholeMd5 = createHash('md5');
    let failure: { err: unknown } | undefined;
    let total = 0;
    let partNumber = 0;
    let etag: string | undefined;
    try {
      for await (const part of parts) {
        if (failure) break;
        const n = ++partNumber;
        if (n > MAX_PARTS) throw new InvalidArgumentError(`writing ${this.#url(key)}: body needs more than ${MAX_PARTS} parts; pass its size`);
        total += part.length;
        wholeMd5.update(part);
        const p: Promise<void> = s3
          .send(
            new UploadPartCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId, PartNumber: n, Body: part, ContentLength: part.length }),
            { abortSignal: ac.signal },
          )
          .then(
            (out) => {
              completed[n - 1] = { PartNumber: n, ETag: out.ETag };
            },
            (err: unknown) => {
              if (!failure) {
                failure = { err };
                ac.abort(); // also wakes a read of the body that is waiting for the producer
              }
            },
          )
          .finally(() => inflight.delete(p));
        inflight.add(p);
        while (inflight.size >= this.#concurrency && !failure) await Promise.race(inflight);
      }
      await Promise.all(inflight);
      if (failure) throw failure.err;
      throwIfAborted(signal);
      etag = await this.#complete(s3, key, objectKey, uploadId, completed, total, wholeMd5.digest('hex'), ac.signal);
    } catch (err) {
      if (!ac.signal.aborted) ac.abort();
      await Promise.allSettled(inflight);
      // Best effort: an upload left behind is invisible, and a lifecycle rule can expire it.
      await s3.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId })).catch(() => {});
      if (signal?.aborted) throw abortReason(signal);
      if (err instanceof BodyError) throw err;
      throw failure ? failure.err : err;
    }
    return this.#stat(s3, key, etag, total, signal);
  }

  /**
   * Completes the upload. When the answer to a Complete that did succeed is lost, its retry gets
   * NoSuchUpload (or another error); then the object is checked: same size and the ETag S3 (or an
   * S3-compatible server) gives these parts means the upload did complete.
   */
  async #complete(
    s3: S3Client,
    key: string,
    objectKey: string,
    uploadId: string,
    parts: CompletedPart[],
    total: number,
    wholeMd5: string,
    signal: AbortSignal,
  ): Promise<string | undefined> {
    try {
      const out = await s3.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
        { abortSignal: signal },
      );
      return out.ETag;
    } catch (err) {
      if (signal.aborted) throw err;
      const head = await s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal: signal }).catch(() => undefined);
      const etag = head?.ETag?.replace(/"/g, '');
      if (head && head.ContentLength === total && etag && (etag === multipartEtag(parts) || etag === wholeMd5)) return head.ETag;
      throw err;
    }
  }

  /**
   * Returns the stored object's size and LastModified, from HeadObject pinned to the ETag just
   * written. The object is stored by then, so this never fails the put: when the HEAD cannot tell
   * (write-only credentials, replaced or deleted meanwhile, an abort), the size written and the local
   * time stand in.
   */
  async #stat(s3: S3Client, key: string, etag: string | undefined, size: number, signal: AbortSignal | undefined): Promise<ObjectInfo> {
    try {
      const head = await s3.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.root + key, IfMatch: etag }), { abortSignal: signal });
      return { key, size: head.ContentLength ?? size, createdAt: head.LastModified ?? new Date() };
    } catch {
      return { key, size, createdAt: new Date() };
    }
  }

  async open(key: string, options: OpenOptions = {}): Promise<Readable> {
    assertValidKey(key);
    const { signal, range } = options;
    throwIfAborted(signal);
    assertValidRange(range, this.#url(key));
    const op: S3Operation = { action: 's3:GetObject', what: `reading ${this.#url(key)}`, key, notFound: true };
    try {
      const s3 = await this.#client(signal);
      const objectKey = this.root + key;
      let out;
      try {
        out = await s3.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, ...(range ? { Range: `bytes=${range.start}-${range.end ?? ''}` } : {}) }),
          { abortSignal: signal },
        );
      } catch (err) {
        // A range starting at or past the end: the object exists and the range holds no byte.
        if (range && (httpStatus(err) === 416 || errorCode(err) === 'InvalidRange')) return Readable.from([]);
        throw err;
      }
      const body = out.Body as Readable | undefined;
      if (!body) return Readable.from([]);
      let extent;
      try {
        extent = bodyExtent(out.ContentRange, out.ContentLength, range !== undefined);
      } catch (err) {
        body.destroy();
        throw err;
      }
      const { start, end } = extent;
      const etag = out.ETag;
      return new ResumingReadStream(
        { body, start, end },
        {
          signal,
          maxResumes: this.#readResumes,
          isRetryable: isTransientS3Error,
          mapError: (err) => this.#fail(err, op, signal),
          fetch: async ({ start: from, end: to }, fetchSignal) => {
            try {
              // Pinned to the ETag the read started on: a replaced object is not stitched together.
              const again = await s3.send(
                new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, Range: `bytes=${from}-${to}`, IfMatch: etag }),
                { abortSignal: fetchSignal },
              );
              return { body: (again.Body as Readable | undefined) ?? Readable.from([]), start: from };
            } catch (err) {
              if (httpStatus(err) === 412) {
                throw new TransientError(`reading ${this.#url(key)}: the object was replaced while being read; read it again`, { cause: err });
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

  async *list(prefix: string, options: ListOptions = {}): AsyncGenerator<ListEntry> {
    assertValidPrefix(prefix);
    const { signal, delimiter } = options;
    throwIfAborted(signal);
    const op: S3Operation = { action: 's3:ListBucket', what: `listing ${this.#url(prefix)}` };
    let s3: S3Client;
    try {
      s3 = await this.#client(signal);
    } catch (err) {
      throw this.#fail(err, op, signal);
    }
    let token: string | undefined;
    for (;;) {
      throwIfAborted(signal);
      let page;
      try {
        page = await s3.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.root + prefix,
            MaxKeys: this.#listPageSize,
            ...(delimiter ? { Delimiter: delimiter } : {}),
            ...(token ? { ContinuationToken: token } : {}),
          }),
          { abortSignal: signal },
        );
      } catch (err) {
        throw this.#fail(err, op, signal);
      }
      const entries: ListEntry[] = [];
      for (const o of page.Contents ?? []) {
        const key = relativeKey(this.root, o.Key);
        if (key === undefined) continue;
        entries.push({ type: 'object', key, size: o.Size ?? 0, createdAt: o.LastModified ?? new Date(0) });
      }
      for (const p of page.CommonPrefixes ?? []) {
        if (p.Prefix?.startsWith(this.root + prefix)) entries.push({ type: 'prefix', key: p.Prefix.slice(this.root.length) });
      }
      // A page holds objects and common prefixes apart; S3 orders them together.
      entries.sort((a, b) => compareKeys(a.key, b.key));
      yield* entries;
      const next = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (!next) return;
      if (next === token) throw new LstreamError('ES3', `${op.what}: the server repeated a continuation token`);
      token = next;
    }
  }

  /**
   * Deletes `keys` with DeleteObjects, 1000 per request. Keys that fail one by one (S3 reports
   * those inside a successful answer) are tried again when the error is transient, then reported
   * together in one DeleteFailedError; a request that fails as a whole (network, access denied)
   * rejects with its own typed error.
   */
  async delete(keys: readonly string[], options: { signal?: AbortSignal } = {}): Promise<void> {
    for (const k of keys) assertValidKey(k);
    const { signal } = options;
    throwIfAborted(signal);
    if (keys.length === 0) return;
    const unique = [...new Set(keys)];
    const failures: { key: string; error: unknown }[] = [];
    const op: S3Operation = { action: 's3:DeleteObject', what: `deleting ${unique.length} object(s) under s3://${this.bucket}/${this.root}` };
    try {
      const s3 = await this.#client(signal);
      for (let i = 0; i < unique.length; i += DELETE_BATCH) {
        throwIfAborted(signal);
        failures.push(...(await this.#deleteBatch(s3, unique.slice(i, i + DELETE_BATCH), signal)));
      }
    } catch (err) {
      throw this.#fail(err, op, signal);
    }
    if (failures.length > 0) throw new DeleteFailedError(failures);
  }

  async #deleteBatch(s3: S3Client, batch: string[], signal: AbortSignal | undefined): Promise<{ key: string; error: unknown }[]> {
    const failed: { key: string; error: unknown }[] = [];
    const keyOf = (e: { Key?: string | undefined }) => relativeKey(this.root, e.Key) ?? (e.Key ?? '').slice(this.root.length);
    const failure = (e: { Key?: string | undefined; Code?: string | undefined; Message?: string | undefined }) => {
      const key = keyOf(e);
      const sdkLike = Object.assign(new Error(e.Message ?? e.Code ?? 'delete failed'), { name: e.Code ?? 'Error', Code: e.Code });
      return { key, error: this.#fail(sdkLike, { action: 's3:DeleteObject', what: `deleting ${this.#url(key)}`, key }, undefined) };
    };
    let pending = batch;
    for (let attempt = 0; ; attempt++) {
      const out = await s3.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: pending.map((k) => ({ Key: this.root + k })), Quiet: true },
        }),
        { abortSignal: signal },
      );
      const errors = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      // Keys refused for good are reported; keys that failed for a transient reason are tried again
      // on their own, while attempts last.
      const retry = errors.filter((e) => e.Code && RETRYABLE_DELETE_CODES.has(e.Code));
      for (const e of errors) if (!retry.includes(e)) failed.push(failure(e));
      if (retry.length === 0) return failed;
      if (attempt + 1 >= this.#maxAttempts) return [...failed, ...retry.map(failure)];
      await sleep(backoffDelay(attempt), signal).catch(() => throwIfAborted(signal));
      pending = retry.map(keyOf);
    }
  }

  /** Releases the connections of the SDK client this client built (a given `s3Client` is left open). */
  async close(): Promise<void> {
    this.#closed = true;
    const ready = this.#ready;
    this.#ready = undefined;
    await ready?.catch(() => undefined);
    this.#built?.destroy();
    this.#built = undefined;
  }
}

/** Returns the ETag S3 gives a multipart object: the MD5 of the parts' MD5s, a dash, the part count. */
function multipartEtag(parts: CompletedPart[]): string | undefined {
  const h = createHash('md5');
  for (const p of parts) {
    const hex = p.ETag?.replace(/"/g, '');
    if (!hex || !/^[0-9a-f]{32}$/i.test(hex)) return undefined;
    h.update(Buffer.from(hex, 'hex'));
  }
  return `${h.digest('hex')}-${parts.length}`;
}

/** Returns the absolute first and last byte offsets of a GetObject body. */
function bodyExtent(contentRange: string | undefined, contentLength: number | undefined, ranged: boolean): { start: number; end: number } {
  const m = contentRange ? /bytes (\d+)-(\d+)\//.exec(contentRange) : null;
  if (m) return { start: Number(m[1]), end: Number(m[2]) };
  if (ranged) throw new LstreamError('ES3', 'the server ignored the Range header (no Content-Range in its answer)');
  return { start: 0, end: (contentLength ?? 0) - 1 };
}

/** Yields `buf` cut into parts (views, no copies). */
async function* slices(buf: Buffer, partSize: (n: number) => number): AsyncGenerator<Buffer> {
  for (let off = 0, n = 1; off < buf.length; n++) {
    const size = partSize(n);
    yield buf.subarray(off, off + size);
    off += size;
  }
}

/** Yields the parts already read, then the rest of the body cut by `partSize`. */
async function* streamParts(reader: PartReader, first: Buffer[], partSize: (n: number) => number): AsyncGenerator<Buffer> {
  let n = 0;
  for (const p of first) {
    n++;
    yield p;
  }
  for (;;) {
    const part = await reader.next(partSize(++n));
    if (part.length === 0) return;
    yield part;
  }
}

/** Creates an S3ReplicaClient from plain options (the fields of an `s3` replica in the config). */
export function createS3ReplicaClient(options: S3ReplicaClientOptions): S3ReplicaClient {
  return new S3ReplicaClient(options);
}
