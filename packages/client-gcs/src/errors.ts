import { AccessDeniedError, LstreamError, NotFoundError, TransientError, abortReason, isAbortError } from '@ls/core';

/** What a GCS call was doing, for error messages and IAM hints. */
export interface GcsOperation {
  /** The IAM permission the call needs, e.g. `storage.objects.create`. */
  permission: string;
  /** What was being done, e.g. `writing gs://bucket/prefix/key`. */
  what: string;
  /** The object key relative to the client's root, when the call was about one object. */
  key?: string;
  /** Map 404 to NotFoundError (reads of one object). */
  notFound?: boolean;
}

/** HTTP statuses worth another try: request timeout, throttling, server errors. */
const TRANSIENT_STATUSES = new Set([408, 429, 500, 502, 503, 504]);

/** Error reasons GCS gives throttling and backend trouble (in `errors[].reason`). */
const TRANSIENT_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'backendError', 'internalError']);

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

interface GcsErrorShape {
  code?: unknown;
  status?: unknown;
  type?: unknown;
  message?: unknown;
  errors?: { reason?: unknown; message?: unknown }[];
  response?: { status?: unknown; statusCode?: unknown };
  cause?: unknown;
}

function shape(err: unknown): GcsErrorShape | undefined {
  return typeof err === 'object' && err !== null ? (err as GcsErrorShape) : undefined;
}

/**
 * Returns the HTTP status of an SDK error, when the server answered. The SDK's ApiError carries it
 * as a numeric `code`; errors of resumable uploads (gaxios) as `status` or `response.status`.
 */
export function httpStatus(err: unknown): number | undefined {
  const e = shape(err);
  if (!e) return undefined;
  for (const v of [e.code, e.status, e.response?.status, e.response?.statusCode]) {
    if (typeof v === 'number' && v >= 100 && v < 600) return v;
    if (typeof v === 'string' && /^[1-5]\d\d$/.test(v)) return Number(v);
  }
  return undefined;
}

/** Returns the first `errors[].reason` of a GCS JSON error (`notFound`, `forbidden`, `rateLimitExceeded`, ...). */
export function errorReason(err: unknown): string | undefined {
  const r = shape(err)?.errors?.find((x) => typeof x?.reason === 'string')?.reason;
  return typeof r === 'string' ? r : undefined;
}

function nodeCode(err: unknown): string | undefined {
  const c = shape(err)?.code;
  return typeof c === 'string' ? c.toUpperCase() : undefined;
}

/** Returns true when no credentials could be found (google-auth-library's ADC lookup failed). */
export function isMissingCredentials(err: unknown): boolean {
  const msg = shape(err)?.message;
  return typeof msg === 'string' && /Could not load the default credentials|Unable to detect a Project Id/i.test(msg);
}

/**
 * Returns true when `err` is worth retrying: 408, 429, 5xx, GCS's rate-limit and backend reasons,
 * dropped or refused connections, timeouts, and bodies cut short. The SDK gets this as its
 * `retryableErrorFn`, so it and the client agree on what is transient.
 */
export function isTransientGcsError(err: unknown): boolean {
  const e = shape(err);
  if (!e || isAbortError(err)) return false;
  const status = httpStatus(err);
  if (status !== undefined && TRANSIENT_STATUSES.has(status)) return true;
  const reason = errorReason(err);
  if (reason !== undefined && (TRANSIENT_REASONS.has(reason) || NETWORK_CODES.has(reason.toUpperCase()))) return true;
  const code = nodeCode(err);
  if (code !== undefined && NETWORK_CODES.has(code)) return true;
  // node-fetch (under the SDK) marks network failures `type: 'system'` and its own timeouts `request-timeout`/`body-timeout`.
  if (e.type === 'request-timeout' || e.type === 'body-timeout') return true;
  const msg = typeof e.message === 'string' ? e.message : '';
  if (status === undefined && /socket hang up|ECONNRESET|premature close|aborted|unexpected connection closure|other side closed|timed? ?out/i.test(msg)) return true;
  // The SDK gives up on a resumable session it cannot continue with a RangeError; a new upload can.
  if ((err instanceof RangeError || (err as Error).name === 'RangeError') && /Initiate a new upload/i.test(msg)) return true;
  return e.cause !== undefined && e.cause !== err && isTransientGcsError(e.cause);
}

/** What could be a credential in a message (bearer and OAuth tokens, key material), and what replaces it. */
const SECRET_PATTERNS: [RegExp, string][] = [
  [/Bearer\s+[A-Za-z0-9._~+/=-]+/gi, 'Bearer [redacted]'],
  [/ya29\.[A-Za-z0-9._-]+/g, '[redacted]'],
  [/(access_token|refresh_token|id_token|client_secret|private_key)(["'\s:=]+)[^"'\s,&}]+/gi, '$1$2[redacted]'],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, '[redacted private key]'],
];

/** Removes anything credential-like from `text`. */
export function redact(text: string): string {
  let out = text;
  for (const [re, replacement] of SECRET_PATTERNS) out = out.replace(re, replacement);
  return out;
}

function serverSays(err: unknown): string {
  const status = httpStatus(err);
  const reason = errorReason(err) ?? nodeCode(err);
  const raw = shape(err)?.message;
  const msg = typeof raw === 'string' && raw !== '' ? redact(raw.split('\n')[0]!.slice(0, 300)) : 'error';
  const tags = [status ? `HTTP ${status}` : undefined, reason && !msg.includes(reason) ? reason : undefined].filter(Boolean);
  return tags.length > 0 ? `${msg} (${tags.join(', ')})` : msg;
}

const CREDENTIAL_SOURCES =
  'keyFilename / GOOGLE_APPLICATION_CREDENTIALS (a service-account key file), `gcloud auth application-default login`, or the metadata server of a GCE/GKE/Cloud Run host';

/**
 * Returns a copy of an SDK error that keeps what diagnoses it (name, message, status, code, reasons)
 * and drops the rest: the SDK's errors hold the HTTP response and its request, whose headers carry
 * the OAuth bearer token, and a logged `cause` must never show a credential.
 */
export function sanitizeCause(err: unknown): unknown {
  const e = shape(err);
  if (!e || !(err instanceof Error)) return err;
  const copy = new Error(redact(err.message));
  copy.name = err.name;
  if (err.stack) copy.stack = redact(err.stack);
  const extra: Record<string, unknown> = {};
  if (e.code !== undefined) extra.code = e.code;
  const status = httpStatus(err);
  if (status !== undefined) extra.status = status;
  if (typeof e.type === 'string') extra.type = e.type;
  if (Array.isArray(e.errors)) extra.errors = e.errors.map((x) => ({ reason: x?.reason, message: typeof x?.message === 'string' ? redact(x.message) : undefined }));
  if (e.cause !== undefined && e.cause !== err) extra.cause = sanitizeCause(e.cause);
  return Object.assign(copy, extra);
}

/**
 * Maps an SDK (or network) error to the contract's typed errors: NotFoundError, AccessDeniedError,
 * TransientError, the signal's AbortError; a missing bucket is an LstreamError with code `ENOBUCKET`,
 * anything else an LstreamError with code `EGCS`. Messages name the operation and the `gs://`
 * location, say what to check, and never contain a credential; the original stays as `cause`.
 */
export function mapGcsError(raw: unknown, op: GcsOperation, signal?: AbortSignal): unknown {
  if (signal?.aborted) return abortReason(signal);
  if (LstreamError.isInstance(raw) || isAbortError(raw)) return raw;
  const err = sanitizeCause(raw);
  const status = httpStatus(err);
  const message = String(shape(err)?.message ?? '');
  const noBucket = status === 404 && /bucket does not exist|no such bucket|notFound: bucket/i.test(message);
  if (noBucket) {
    return new LstreamError('ENOBUCKET', `${op.what}: the bucket does not exist (${serverSays(err)}); check the bucket name and project`, { cause: err });
  }
  if (status === 404 && op.notFound && op.key !== undefined) return new NotFoundError(op.key, { cause: err });
  if (isMissingCredentials(err)) {
    return new AccessDeniedError(`${op.what}: no Google Cloud credentials found; set ${CREDENTIAL_SOURCES}`, { cause: err });
  }
  if (status === 401) {
    return new AccessDeniedError(
      `${op.what}: the credentials were rejected (${serverSays(err)}); check that they are valid and not expired: ${CREDENTIAL_SOURCES}`,
      { cause: err },
    );
  }
  if (status === 403) {
    return new AccessDeniedError(
      `${op.what}: access denied (${serverSays(err)}); check that the credentials' principal has ${op.permission} on the bucket (e.g. roles/storage.objectAdmin), and that the bucket name is right`,
      { cause: err },
    );
  }
  if (isTransientGcsError(err)) return new TransientError(`${op.what}: ${serverSays(err)}`, { cause: err });
  return new LstreamError('EGCS', `${op.what}: ${serverSays(err)}`, { cause: err });
}
