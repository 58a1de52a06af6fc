import { AccessDeniedError, LstreamError, NotFoundError, TransientError, abortReason, isAbortError } from '@ls/core';

/** What an S3 call was doing, for error messages and IAM hints. */
export interface S3Operation {
  /** The IAM action the call needs, e.g. `s3:GetObject`. */
  action: string;
  /** What was being done, e.g. `reading s3://bucket/prefix/key`. */
  what: string;
  /** The object key relative to the client's root, when the call was about one object. */
  key?: string;
  /** Map NoSuchKey / 404 to NotFoundError (reads of one object). */
  notFound?: boolean;
}

/** Strings that must never appear in a message: the configured secret (and access key id). */
export type Secrets = readonly string[];

const DENIED_CODES = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'AccountProblem',
  'Forbidden',
  'InvalidAccessKeyId',
  'InvalidSecurity',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'RequestTimeTooSkewed',
  'InvalidObjectState',
  'CredentialsProviderError',
]);

const TRANSIENT_CODES = new Set([
  'InternalError',
  'ServiceUnavailable',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'TooManyRequestsException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'PriorRequestNotComplete',
  'OperationAborted',
]);

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
  $response?: { headers?: Record<string, string | undefined> };
}

/** Returns the S3 error code of an SDK error (`NoSuchKey`, `AccessDenied`, ...) or a Node error code. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as SdkErrorShape;
  // S3 errors carry their code as `Code` and/or `name`; Node's network errors as `code`, named plain "Error".
  return e.Code ?? (e.name && e.name !== 'Error' ? e.name : undefined) ?? e.code ?? e.name;
}

/** Returns the HTTP status of an SDK error, when the server answered. */
export function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  return (err as SdkErrorShape).$metadata?.httpStatusCode;
}

/** Returns true when `err` says the credentials may not do what was asked (403 and friends). */
export function isDenied(err: unknown): boolean {
  const code = errorCode(err);
  return httpStatus(err) === 403 || (code !== undefined && DENIED_CODES.has(code));
}

/** Returns true when `err` is worth retrying: throttling, 5xx, timeouts, dropped connections. */
export function isTransientS3Error(err: unknown): boolean {
  if (typeof err !== 'object' || err === null || isAbortError(err)) return false;
  const code = errorCode(err);
  const status = httpStatus(err);
  if (status === 429 || (status !== undefined && status >= 500)) return true;
  if (code !== undefined && (TRANSIENT_CODES.has(code) || NETWORK_CODES.has(code))) return true;
  const nodeCode = (err as { code?: unknown }).code;
  if (typeof nodeCode === 'string' && NETWORK_CODES.has(nodeCode)) return true;
  if ((err as SdkErrorShape).$retryable !== undefined) return true;
  const msg = (err as SdkErrorShape).message ?? '';
  if (/socket hang up|aborted|premature close/i.test(msg) && status === undefined) return true;
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err && isTransientS3Error(cause);
}

/** Replaces every occurrence of a secret in `text`. */
export function redact(text: string, secrets: Secrets): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join('[redacted]');
  return out;
}

function serverSays(err: unknown, secrets: Secrets): string {
  const code = errorCode(err) ?? 'error';
  const status = httpStatus(err);
  const raw = (err as SdkErrorShape | undefined)?.message;
  // The SDK gives "UnknownError" or the code itself as message when the body had none.
  const msg = raw && raw !== code && raw !== 'UnknownError' ? `: ${redact(raw, secrets)}` : '';
  return `${code}${status ? ` (HTTP ${status})` : ''}${msg}`;
}

function deniedHint(code: string | undefined, op: S3Operation): string {
  switch (code) {
    case 'InvalidAccessKeyId':
      return 'the access key id is unknown to the service; check accessKeyId (or LITESTREAM_ACCESS_KEY_ID / the AWS credential chain) and that the endpoint belongs to the provider that issued the key';
    case 'SignatureDoesNotMatch':
      return 'check the secret access key (or LITESTREAM_SECRET_ACCESS_KEY / the AWS credential chain), and the region and endpoint';
    case 'ExpiredToken':
    case 'InvalidToken':
    case 'TokenRefreshRequired':
      return 'the session token expired or is invalid; refresh the temporary credentials';
    case 'RequestTimeTooSkewed':
      return "the system clock is too far from the server's; check NTP on this host";
    case 'CredentialsProviderError':
      return 'no credentials were found; set accessKeyId and secretAccessKey, LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY, or configure the AWS credential chain (AWS_ACCESS_KEY_ID, ~/.aws/credentials, an instance role)';
    default:
      return `check that the credentials' policy (and the bucket policy, and any KMS key policy) allows ${op.action}`;
  }
}

/**
 * Maps an S3 SDK (or network) error to the contract's typed errors: NotFoundError, AccessDeniedError,
 * TransientError, the signal's AbortError; anything else becomes an LstreamError with code `ES3`.
 * Messages name the operation and the object, never a credential; the original is kept as `cause`.
 */
export function mapS3Error(err: unknown, op: S3Operation, secrets: Secrets, signal?: AbortSignal): unknown {
  if (signal?.aborted) return abortReason(signal);
  if (LstreamError.isInstance(err)) return err;
  if (isAbortError(err)) return err;
  const code = errorCode(err);
  const status = httpStatus(err);
  if (op.notFound && op.key !== undefined && (code === 'NoSuchKey' || code === 'NotFound' || status === 404) && code !== 'NoSuchBucket') {
    return new NotFoundError(op.key, { cause: err });
  }
  if (code === 'NoSuchBucket') {
    return new LstreamError('ENOBUCKET', `${op.what}: the bucket does not exist (${serverSays(err, secrets)}); check the bucket name, region and endpoint`, {
      cause: err,
    });
  }
  if (isDenied(err)) {
    return new AccessDeniedError(`${op.what}: access denied (${serverSays(err, secrets)}); ${deniedHint(code, op)}`, { cause: err });
  }
  if (isTransientS3Error(err)) {
    return new TransientError(`${op.what}: ${serverSays(err, secrets)}`, { cause: err });
  }
  return new LstreamError('ES3', `${op.what}: ${serverSays(err, secrets)}`, { cause: err });
}
