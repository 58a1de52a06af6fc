// One benchmark operation in its own process, so its peak RSS is its own. Prints JSON.
// Usage: node bench-worker.mjs <lz4-encode|lz4-decode|wal-apply|sqlite-checkpoint> <in> [out]
import { createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import { WalApplier, decodeLz4Frame, encodeLz4Frame, lendFileChunks, readFileChunks, releaseDecodedBlock } from '@ls/wal';

const [op, input, output] = process.argv.slice(2);
const t0 = process.hrtime.bigint();
let extra = {};
switch (op) {
  // The input is read through readFileChunks (two 4 MiB buffers, reused), which both codecs accept.
  case 'lz4-encode':
    await pipeline(readFileChunks(input), (src) => encodeLz4Frame(src), createWriteStream(output, { highWaterMark: 16 << 20 }));
    break;
  case 'lz4-decode': {
    // The path restore writes a snapshot by: positional writes, two in flight, each block given back
    // to the decoder once written (releaseDecodedBlock), so its memory carries the next block.
    const fh = await open(output, 'w');
    const inflight = new Set();
    let at = 0;
    for await (const block of decodeLz4Frame(readFileChunks(input))) {
      const p = fh.write(block, 0, block.length, at).then(() => {
        releaseDecodedBlock(block);
        inflight.delete(p);
      });
      inflight.add(p);
      at += block.length;
      while (inflight.size >= 2) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    await fh.close();
    break;
  }
  case 'lz4-decode-pipeline':
    // Any stream consumer: blocks go to fs.createWriteStream and are left to the garbage collector.
    await pipeline(readFileChunks(input), (src) => decodeLz4Frame(src), createWriteStream(output, { highWaterMark: 16 << 20 }));
    break;
  case 'wal-apply': {
    // As restore applies segments: each page is written as it is read (writeThrough), from 4 MiB
    // chunks lent to the applier and given back once written, for the next reads.
    const applier = await WalApplier.open(output, { writeThrough: true });
    const wal = lendFileChunks(input);
    const r = await applier.apply(wal.chunks, { release: wal.release });
    await applier.close();
    extra = { frames: r.frames, walBytes: r.walBytes };
    break;
  }
  case 'sqlite-checkpoint': {
    // SQLite's own path: open (rebuilds the WAL index from the -wal file), checkpoint, close.
    const db = new Database(input);
    const [busy, log, done] = db.prepare('PRAGMA wal_checkpoint(TRUNCATE)').raw().get();
    db.close();
    if (busy !== 0 || log !== done) throw new Error(`checkpoint incomplete: ${busy} ${log} ${done}`);
    break;
  }
  default:
    throw new Error(`unknown op ${op}`);
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
process.stdout.write(JSON.stringify({ op, seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024, ...extra }));
