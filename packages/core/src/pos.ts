import { randomBytes } from 'node:crypto';
import { InvalidArgumentError } from './errors.js';

/** Length of a generation name: 16 lowercase hex characters. */
export const GENERATION_NAME_LENGTH = 16;
/** Largest WAL index the replica layout can name (8 hex digits, as Litestream v0.3 limits it). */
export const MAX_WAL_INDEX = 0x7fffffff;
/** Largest WAL offset the replica layout can name (8 hex digits); the engine restarts the WAL before it. */
export const MAX_WAL_OFFSET = 0xffffffff;

const GENERATION_RE = /^[0-9a-f]{16}$/;
const POS_RE = /^([0-9a-f]{16})\/([0-9a-f]{8}):(0|[1-9][0-9]{0,9})$/;

/** Returns true when `name` is a valid generation name: exactly 16 lowercase hex characters. */
export function isGenerationName(name: string): boolean {
  return GENERATION_RE.test(name);
}

/** Returns a new generation name from 8 bytes of cryptographic randomness. */
export function newGenerationName(): string {
  return randomBytes(8).toString('hex');
}

/** Throws InvalidArgumentError unless `name` is a valid generation name. */
export function assertGenerationName(name: string): void {
  if (!isGenerationName(name)) {
    throw new InvalidArgumentError(`invalid generation name ${JSON.stringify(name)}: want 16 lowercase hex characters`);
  }
}

/** Throws InvalidArgumentError unless `index` is a WAL index the layout can name. */
export function assertWalIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0 || index > MAX_WAL_INDEX) {
    throw new InvalidArgumentError(`invalid WAL index ${index}: want an integer from 0 to ${MAX_WAL_INDEX}`);
  }
}

/** Throws InvalidArgumentError unless `offset` is a WAL offset the layout can name. */
export function assertWalOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset > MAX_WAL_OFFSET) {
    throw new InvalidArgumentError(`invalid WAL offset ${offset}: want an integer from 0 to ${MAX_WAL_OFFSET}`);
  }
}

/**
 * A position in a database's history: a generation, a WAL index in it, and a byte offset in that WAL
 * (header included, frame aligned). Immutable.
 */
export class Pos {
  constructor(
    readonly generation: string,
    readonly index: number,
    readonly offset: number,
  ) {
    assertGenerationName(generation);
    assertWalIndex(index);
    assertWalOffset(offset);
  }

  /**
   * Parses `<generation>/<index, 8 hex digits>:<offset, decimal>`, the form Litestream prints.
   * Throws InvalidArgumentError for anything else.
   */
  static parse(s: string): Pos {
    const m = POS_RE.exec(s);
    if (!m) {
      throw new InvalidArgumentError(
        `invalid position ${JSON.stringify(s)}: want <16 hex generation>/<8 hex index>:<decimal offset>`,
      );
    }
    return new Pos(m[1]!, Number.parseInt(m[2]!, 16), Number(m[3]!));
  }

  /** Formats as `<generation>/<index %08x>:<offset decimal>`, e.g. `9ed130e36a449e5a/00000014:0`. */
  toString(): string {
    return `${this.generation}/${this.index.toString(16).padStart(8, '0')}:${this.offset}`;
  }

  /** Returns this position with the offset set to 0 (the start of its WAL index). */
  truncate(): Pos {
    return new Pos(this.generation, this.index, 0);
  }

  /** Returns true when both positions are the same. */
  equals(other: Pos): boolean {
    return comparePos(this, other) === 0;
  }

  toJSON(): string {
    return this.toString();
  }
}

/**
 * Orders positions by generation name, then index, then offset. Positions in different generations
 * have no causal order; they sort by name only so that lists are deterministic.
 */
export function comparePos(a: Pos, b: Pos): number {
  if (a.generation !== b.generation) return a.generation < b.generation ? -1 : 1;
  return a.index - b.index || a.offset - b.offset;
}
