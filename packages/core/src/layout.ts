import { InvalidArgumentError } from './errors.js';
import { assertGenerationName, assertWalIndex, assertWalOffset, isGenerationName, Pos } from './pos.js';

/** Prefix under which every generation lives. */
export const GENERATIONS_PREFIX = 'generations/';

const SNAPSHOT_NAME_RE = /^([0-9a-f]{8})\.snapshot\.lz4$/;
const WAL_SEGMENT_NAME_RE = /^([0-9a-f]{8})_([0-9a-f]{8})\.wal\.lz4$/;
const KEY_RE = /^generations\/([0-9a-f]{16})\/(snapshots|wal)\/([^/]+)$/;

/** A snapshot in a replica: the database file at the start of WAL `index`. `size` is the stored (compressed) size. */
export interface SnapshotInfo {
  generation: string;
  index: number;
  size: number;
  createdAt: Date;
}

/** A WAL segment in a replica: committed WAL bytes of `index` starting at `offset`. `size` is the stored size. */
export interface WalSegmentInfo {
  generation: string;
  index: number;
  offset: number;
  size: number;
  createdAt: Date;
}

const hex8 = (n: number) => n.toString(16).padStart(8, '0');

/** Returns `generations/<gen>/`. */
export function generationPrefix(generation: string): string {
  assertGenerationName(generation);
  return `${GENERATIONS_PREFIX}${generation}/`;
}

/** Returns `generations/<gen>/snapshots/`. */
export function snapshotsPrefix(generation: string): string {
  return `${generationPrefix(generation)}snapshots/`;
}

/** Returns `generations/<gen>/wal/`. */
export function walPrefix(generation: string): string {
  return `${generationPrefix(generation)}wal/`;
}

/** Returns the snapshot key `generations/<gen>/snapshots/<index %08x>.snapshot.lz4`. */
export function snapshotKey(generation: string, index: number): string {
  assertWalIndex(index);
  return `${snapshotsPrefix(generation)}${hex8(index)}.snapshot.lz4`;
}

/** Returns the segment key `generations/<gen>/wal/<index %08x>_<offset %08x>.wal.lz4`. */
export function walSegmentKey(generation: string, index: number, offset: number): string {
  assertWalIndex(index);
  assertWalOffset(offset);
  return `${walPrefix(generation)}${hex8(index)}_${hex8(offset)}.wal.lz4`;
}

/** Returns the segment key for a position. */
export function walSegmentKeyAt(pos: Pos): string {
  return walSegmentKey(pos.generation, pos.index, pos.offset);
}

function parseHex8(s: string, what: string, max: number): number {
  const n = Number.parseInt(s, 16);
  if (n > max) throw new InvalidArgumentError(`${what} 0x${s} is out of range`);
  return n;
}

/** Parses a snapshot file name (`0000000a.snapshot.lz4`); returns its index, or undefined for any other name. */
export function parseSnapshotName(name: string): number | undefined {
  const m = SNAPSHOT_NAME_RE.exec(name);
  if (!m) return undefined;
  const index = Number.parseInt(m[1]!, 16);
  return index <= 0x7fffffff ? index : undefined;
}

/** Parses a segment file name (`0000000a_00001038.wal.lz4`); returns index and offset, or undefined for any other name. */
export function parseWalSegmentName(name: string): { index: number; offset: number } | undefined {
  const m = WAL_SEGMENT_NAME_RE.exec(name);
  if (!m) return undefined;
  const index = Number.parseInt(m[1]!, 16);
  if (index > 0x7fffffff) return undefined;
  return { index, offset: parseHex8(m[2]!, 'offset', 0xffffffff) };
}

/** What a layout key names. */
export type ParsedKey =
  | { kind: 'snapshot'; generation: string; index: number }
  | { kind: 'wal'; generation: string; index: number; offset: number };

/**
 * Parses a full layout key strictly. Returns undefined for anything that is not exactly a snapshot
 * or segment key of the Litestream v0.3 layout (wrong widths, upper case, extra segments, ...).
 */
export function parseLayoutKey(key: string): ParsedKey | undefined {
  const m = KEY_RE.exec(key);
  if (!m || !isGenerationName(m[1]!)) return undefined;
  const generation = m[1]!;
  if (m[2] === 'snapshots') {
    const index = parseSnapshotName(m[3]!);
    return index === undefined ? undefined : { kind: 'snapshot', generation, index };
  }
  const seg = parseWalSegmentName(m[3]!);
  return seg === undefined ? undefined : { kind: 'wal', generation, ...seg };
}

/** Returns the position at the start of a snapshot's index. */
export function snapshotPos(info: SnapshotInfo): Pos {
  return new Pos(info.generation, info.index, 0);
}

/** Returns the position where a segment starts. */
export function walSegmentPos(info: WalSegmentInfo): Pos {
  return new Pos(info.generation, info.index, info.offset);
}
