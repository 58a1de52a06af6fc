// Built from source and run under `ulimit -f` by apply-failure.test.ts: applies a WAL whose writes
// into the database pass the file size limit partway (EFBIG): those of a spilled transaction's
// commit, flushes on the thread pool, or (with `through`) pages written through. Prints what each later call did, and the database's bytes
// before and after close(), as JSON.
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { WalApplier } from '../src/apply.js';
import { nativePwriteRuns } from '../src/lz4-native.js';

const [dbPath, walPath, bufferBytes, mode] = process.argv.slice(2) as [string, string, string, string | undefined];
const describe = (err: unknown) => {
  const e = err as { code?: string; cause?: { code?: string }; message?: string };
  return { code: e.code ?? e.cause?.code, message: String(e.message ?? err) };
};
const digest = async () => createHash('sha256').update(await readFile(dbPath)).digest('hex');
const out: Record<string, unknown> = { nativeWrites: nativePwriteRuns() !== undefined };
const applier = await WalApplier.open(dbPath, { strict: true, bufferBytes: Number(bufferBytes), writeThrough: mode === 'through' });
const wal = await readFile(walPath);
for (const step of ['apply', 'again'] as const) {
  try {
    await applier.apply([wal]);
    out[step] = 'ok';
  } catch (err) {
    out[step] = describe(err);
  }
}
out.dbBeforeClose = await digest();
try {
  await applier.close();
  out.close = 'ok';
} catch (err) {
  out.close = describe(err);
}
out.dbAfterClose = await digest();
out.files = await readdir(dirname(dbPath));
process.stdout.write(JSON.stringify(out));
