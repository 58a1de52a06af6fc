import { InvalidArgumentError, InvalidKeyError } from './errors.js';

/** Longest key a client must accept, in UTF-8 bytes (S3's and GCS's limit). */
export const MAX_KEY_BYTES = 1024;
/** Suffix reserved for clients' temporary objects; no key may end with it. */
export const TEMP_SUFFIX = '.tmp';

// Control characters and backslash are refused so a key means the same on every storage and OS.
// eslint-disable-next-line no-control-regex
const BAD_CHARS = /[\u0000-\u001f\u007f\\]/;

function checkSegments(key: string, segments: string[]): void {
  for (const s of segments) {
    if (s === '') throw new InvalidKeyError(key, 'empty path segment (leading, trailing or doubled "/")');
    if (s === '.' || s === '..') throw new InvalidKeyError(key, `"${s}" segments are not allowed`);
  }
}

function checkCommon(key: string): void {
  if (BAD_CHARS.test(key)) throw new InvalidKeyError(key, 'control characters and "\\" are not allowed');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw new InvalidKeyError(key, `longer than ${MAX_KEY_BYTES} bytes`);
  if (key.startsWith('/')) throw new InvalidKeyError(key, 'keys are relative to the client root and must not start with "/"');
}

/**
 * Throws InvalidKeyError unless `key` is a valid object key: `/`-separated, relative to the client's
 * root, no empty, `.` or `..` segment, no control characters or backslash, at most 1024 UTF-8 bytes,
 * not ending in `.tmp` (reserved for temporary objects).
 */
export function assertValidKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidKeyError(String(key), 'empty key');
  checkCommon(key);
  checkSegments(key, key.split('/'));
  if (key.endsWith(TEMP_SUFFIX)) throw new InvalidKeyError(key, `the "${TEMP_SUFFIX}" suffix is reserved for temporary objects`);
}

/**
 * Throws InvalidKeyError unless `prefix` is a valid listing prefix: empty, or a key-like string that
 * may end with `/` (its last segment may be partial).
 */
export function assertValidPrefix(prefix: string): void {
  if (typeof prefix !== 'string') throw new InvalidKeyError(String(prefix), 'prefix must be a string');
  if (prefix === '') return;
  checkCommon(prefix);
  const segments = prefix.split('/');
  if (prefix.endsWith('/')) segments.pop();
  checkSegments(prefix, segments);
}

/**
 * Throws InvalidArgumentError unless `range` (an `open` option) is a byte range: whole numbers,
 * `start` at least 0, `end` (inclusive, optional) not before `start`. `where` names the object in
 * the message.
 */
export function assertValidRange(range: { start: number; end?: number } | undefined, where: string): void {
  if (range && (!Number.isSafeInteger(range.start) || range.start < 0 || (range.end !== undefined && (!Number.isSafeInteger(range.end) || range.end < range.start)))) {
    throw new InvalidArgumentError(`invalid range ${JSON.stringify(range)} for ${where}`);
  }
}

/** Compares two keys by their UTF-8 bytes, the order every listing uses. */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Returns the key of the stored object `name` relative to a client's `root`, or undefined when the
 * name is outside the root or is not a valid key (folder markers, names another tool wrote), which
 * a ReplicaClient's listing skips. Throws only what `assertValidKey` throws besides InvalidKeyError.
 */
export function relativeKey(root: string, name: string | undefined): string | undefined {
  if (name === undefined || !name.startsWith(root)) return undefined;
  const key = name.slice(root.length);
  try {
    assertValidKey(key);
  } catch (err) {
    if (InvalidKeyError.isInstance(err)) return undefined;
    throw err;
  }
  return key;
}
