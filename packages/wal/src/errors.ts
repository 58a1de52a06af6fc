const LSTREAM_ERROR = Symbol.for('lstream.error');

/**
 * Base class of every error lstream throws on purpose. Carries a stable `code` and the low-level
 * `cause`. Use `LstreamError.isInstance(err)` (or a subclass's) rather than `instanceof` when two
 * copies of a package may be loaded: the check relies on a `Symbol.for` marker, not on identity.
 */
export class LstreamError extends Error {
  readonly code: string;
  readonly [LSTREAM_ERROR] = true;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /** Returns true when `err` is an lstream error of this class or a subclass, across package copies. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  static isInstance<T extends abstract new (...args: any[]) => LstreamError>(this: T, err: unknown): err is InstanceType<T> {
    if (typeof err !== 'object' || err === null || !(LSTREAM_ERROR in err)) return false;
    if (this === (LstreamError as unknown)) return true;
    // Walk the prototype chain by name so a subclass from another copy of the package still matches.
    for (let p = Object.getPrototypeOf(err); p; p = Object.getPrototypeOf(p)) {
      if (p.constructor?.name === this.name) return true;
    }
    return false;
  }
}

/** Raised when bytes that should follow a known format do not: a corrupt or truncated object. */
export class CorruptDataError extends LstreamError {
  /** Byte offset in the input where the problem was found, when known. */
  readonly offset: number | undefined;
  /** The stored object the input came from (a replica key), once a caller who knows it has said so. */
  object: string | undefined;

  constructor(message: string, options?: { cause?: unknown; offset?: number; code?: string }) {
    super(options?.code ?? 'ECORRUPT', message, options);
    this.offset = options?.offset;
  }

  /** Names the object the input came from, in `object` and at the front of the message (once). */
  inObject(key: string): this {
    if (this.object === undefined) {
      this.object = key;
      this.message = `${key}: ${this.message}`;
    }
    return this;
  }
}

/** Raised when an LZ4 frame is malformed, truncated or uses a feature lstream does not read. */
export class Lz4FrameError extends CorruptDataError {
  constructor(message: string, options?: { cause?: unknown; offset?: number }) {
    super(message, { ...options, code: 'ELZ4FRAME' });
  }
}

/** Raised when a stored checksum (LZ4 content or block checksum, WAL checksum) does not match the data. */
export class ChecksumMismatchError extends CorruptDataError {
  constructor(message: string, options?: { cause?: unknown; offset?: number }) {
    super(message, { ...options, code: 'ECHECKSUM' });
  }
}

/** Raised when a WAL header or frame is malformed, or when a WAL must be complete and is not. */
export class WalFormatError extends CorruptDataError {
  constructor(message: string, options?: { cause?: unknown; offset?: number }) {
    super(message, { ...options, code: 'EWALFORMAT' });
  }
}

/** Raised when a WAL is applied to a database whose page size differs from the WAL's. */
export class PageSizeMismatchError extends LstreamError {
  constructor(
    readonly walPageSize: number,
    readonly databasePageSize: number,
    target: string,
  ) {
    super(
      'EPAGESIZE',
      `WAL page size ${walPageSize} does not match the page size ${databasePageSize} of ${target}; ` +
        'the WAL belongs to another database or the snapshot is from another generation',
    );
  }
}
