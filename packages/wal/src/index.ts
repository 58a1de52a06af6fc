export * from './errors.js';
export * from './wal-format.js';
export * from './wal-reader.js';
export * from './lz4-frame.js';
export * from './apply.js';
export { ByteReader } from './byte-reader.js';
export { lendFileChunks, readAt, readFileChunks, writeAt, type LentFileChunks, type ReadFileChunksOptions } from './file-chunks.js';
export type { ChunkWatcher } from './byte-reader.js';
export { lz4Backend, type Lz4Backend } from './lz4-native.js';
