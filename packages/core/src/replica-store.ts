import { Readable } from 'node:stream';
import { decodeLz4Frame, encodeLz4Frame, type Lz4EncodeOptions } from '@ls/wal';

/** Which LZ4 implementation snapshots and segments use (liblz4, or lz4-napi and why), for apps to report. */
export { lz4Backend, type Lz4Backend } from '@ls/wal';
import type { ReplicaClient } from './client.js';
import {
  GENERATIONS_PREFIX,
  generationPrefix,
  parseSnapshotName,
  parseWalSegmentName,
  snapshotKey,
  snapshotsPrefix,
  walPrefix,
  walSegmentKey,
  type SnapshotInfo,
  type WalSegmentInfo,
} from './layout.js';
import { noopLogger, type Logger } from './logger.js';
import { isGenerationName, type Pos } from './pos.js';

/** Options shared by the layout functions. */
export interface StoreOptions {
  signal?: AbortSignal;
  /** Receives a warning for every object whose name is not part of the layout (it is ignored). */
  logger?: Logger;
}

/** A body to store: bytes, or a stream of bytes. */
export type Body = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

function asIterable(body: Body): AsyncIterable<Uint8Array> | Iterable<Uint8Array> {
  return body instanceof Uint8Array ? [body] : body;
}

/**
 * Returns the names of the generations in a replica, sorted. Uses delimiter listing when the client
 * has it, so it never walks every object; names that are not valid generation names are ignored.
 */
export async function listGenerations(client: ReplicaClient, options: StoreOptions = {}): Promise<string[]> {
  const found = new Set<string>();
  if (client.capabilities.listDelimiter) {
    for await (const e of client.list(GENERATIONS_PREFIX, { delimiter: '/', signal: options.signal })) {
      if (e.type !== 'prefix') continue;
      const name = e.key.slice(GENERATIONS_PREFIX.length, -1);
      if (isGenerationName(name)) found.add(name);
    }
  } else {
    for await (const e of client.list(GENERATIONS_PREFIX, { signal: options.signal })) {
      const name = e.key.slice(GENERATIONS_PREFIX.length).split('/')[0]!;
      if (isGenerationName(name)) found.add(name);
    }
  }
  return [...found].sort();
}

/** Lists the objects under `prefix` whose names `parse` accepts, warning about (and skipping) the rest. */
async function* listNamed<T>(
  client: ReplicaClient,
  prefix: string,
  parse: (name: string) => T | undefined,
  what: string,
  options: StoreOptions,
): AsyncGenerator<{ parsed: T; size: number; createdAt: Date }> {
  const logger = options.logger ?? noopLogger;
  for await (const e of client.list(prefix, { signal: options.signal })) {
    if (e.type !== 'object') continue;
    const parsed = parse(e.key.slice(prefix.length));
    if (parsed === undefined) {
      logger.warn(`ignoring object that is not a ${what} name`, { key: e.key });
      continue;
    }
    yield { parsed, size: e.size, createdAt: e.createdAt };
  }
}

/** Lists a generation's snapshots lazily, in index order. Objects with other names are ignored. */
export async function* listSnapshots(
  client: ReplicaClient,
  generation: string,
  options: StoreOptions = {},
): AsyncGenerator<SnapshotInfo> {
  for await (const o of listNamed(client, snapshotsPrefix(generation), parseSnapshotName, 'snapshot', options)) {
    yield { generation, index: o.parsed, size: o.size, createdAt: o.createdAt };
  }
}

/**
 * Lists a generation's WAL segments lazily, sorted by index then offset (the layout's fixed-width
 * names make key order that order). Objects with other names are ignored.
 */
export async function* listWalSegments(
  client: ReplicaClient,
  generation: string,
  options: StoreOptions = {},
): AsyncGenerator<WalSegmentInfo> {
  for await (const o of listNamed(client, walPrefix(generation), parseWalSegmentName, 'WAL segment', options)) {
    yield { generation, ...o.parsed, size: o.size, createdAt: o.createdAt };
  }
}

/** Compresses `body` (a database file's bytes) into one LZ4 frame and stores it as the snapshot of `index`. */
export async function writeSnapshot(
  client: ReplicaClient,
  generation: string,
  index: number,
  body: Body,
  options: StoreOptions & { lz4?: Lz4EncodeOptions } = {},
): Promise<SnapshotInfo> {
  const key = snapshotKey(generation, index);
  const info = await client.put(key, encodeLz4Frame(asIterable(body), options.lz4), { signal: options.signal });
  return { generation, index, size: info.size, createdAt: info.createdAt };
}

/**
 * Opens the snapshot of `index` and returns its decompressed bytes as a stream. Rejects with
 * NotFoundError when it does not exist; the stream errors with CorruptDataError on corrupt data.
 */
export async function openSnapshot(
  client: ReplicaClient,
  generation: string,
  index: number,
  options: StoreOptions = {},
): Promise<Readable> {
  const raw = await client.open(snapshotKey(generation, index), { signal: options.signal });
  return Readable.from(decodeLz4Frame(raw), { objectMode: false });
}

/** Compresses `body` (committed WAL bytes starting at `pos`) into one LZ4 frame and stores it as a segment. */
export async function writeWalSegment(
  client: ReplicaClient,
  pos: Pos,
  body: Body,
  options: StoreOptions & { lz4?: Lz4EncodeOptions } = {},
): Promise<WalSegmentInfo> {
  const key = walSegmentKey(pos.generation, pos.index, pos.offset);
  const info = await client.put(key, encodeLz4Frame(asIterable(body), options.lz4), { signal: options.signal });
  return { generation: pos.generation, index: pos.index, offset: pos.offset, size: info.size, createdAt: info.createdAt };
}

/** Opens the segment at `pos` and returns its decompressed WAL bytes. Rejects with NotFoundError when missing. */
export async function openWalSegment(client: ReplicaClient, pos: Pos, options: StoreOptions = {}): Promise<Readable> {
  const raw = await client.open(walSegmentKey(pos.generation, pos.index, pos.offset), { signal: options.signal });
  return Readable.from(decodeLz4Frame(raw), { objectMode: false });
}

/** Deletes the snapshot of `index`; a missing snapshot is not an error. */
export async function deleteSnapshot(
  client: ReplicaClient,
  generation: string,
  index: number,
  options: StoreOptions = {},
): Promise<void> {
  await client.delete([snapshotKey(generation, index)], { signal: options.signal });
}

/** Deletes the segments at `positions` in one batch; missing segments are not an error. */
export async function deleteWalSegments(
  client: ReplicaClient,
  positions: readonly Pos[],
  options: StoreOptions = {},
): Promise<void> {
  if (positions.length === 0) return;
  await client.delete(
    positions.map((p) => walSegmentKey(p.generation, p.index, p.offset)),
    { signal: options.signal },
  );
}

/** Deletes every object of a generation, snapshots and segments alike; a missing generation is not an error. */
export async function deleteGeneration(
  client: ReplicaClient,
  generation: string,
  options: StoreOptions = {},
): Promise<void> {
  const keys: string[] = [];
  for await (const e of client.list(generationPrefix(generation), { signal: options.signal })) {
    if (e.type === 'object') keys.push(e.key);
  }
  if (keys.length > 0) await client.delete(keys, { signal: options.signal });
}

/** Collects an async iterable into an array. */
export async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of source) out.push(x);
  return out;
}
