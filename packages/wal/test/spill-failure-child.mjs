// Run under `ulimit -f` by apply-failure.test.ts: applies a WAL whose one transaction spills, with the
// file size limit between the spill file's size and the database's, so writing the spilled pages into
// the database fails partway (EFBIG) in the commit. Prints what each later call did, as JSON. It
// imports the built package (`pnpm test` builds first).
import { readFile, readdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { WalApplier } from '@ls/wal';

const [dbPath, walPath, bufferBytes] = process.argv.slice(2);
const out = {};
const describe = (err) => ({ code: err?.code ?? err?.cause?.code, message: String(err?.message ?? err) });
const applier = await WalApplier.open(dbPath, { strict: true, bufferBytes: Number(bufferBytes) });
const wal = await readFile(walPath);
try {
  await applier.apply([wal]);
  out.apply = 'ok';
} catch (err) {
  out.apply = describe(err);
}
try {
  await applier.apply([wal]);
  out.again = 'ok';
} catch (err) {
  out.again = describe(err);
}
try {
  await applier.close();
  out.close = 'ok';
} catch (err) {
  out.close = describe(err);
}
out.files = await readdir(dirname(dbPath));
process.stdout.write(JSON.stringify(out));
