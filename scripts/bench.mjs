// lstream benchmarks. Runs each section in its own process and prints one JSON document (also written
// to bench-results.json): every measurement next to its physical floor from the same run, with ratios.
// Usage: pnpm bench [section...]   sections: foundation, engine, storage, server (default: all)
// Generated data is cached under $LSTREAM_BENCH_DIR (default /tmp/lstream-bench).
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const SECTIONS = { foundation: './bench-foundation.mjs', engine: './bench-engine.mjs', storage: './bench-storage.mjs', server: './bench-server.mjs' };
const wanted = process.argv.slice(2).filter((a) => a !== '--');
const names = wanted.length ? wanted : Object.keys(SECTIONS);
const result = {};
for (const name of names) {
  const script = SECTIONS[name];
  if (!script) throw new Error(`unknown bench section '${name}'; choose from ${Object.keys(SECTIONS).join(', ')}`);
  const r = spawnSync(process.execPath, [fileURLToPath(new URL(script, import.meta.url))], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`bench section ${name} failed (exit ${r.status})`);
  result[name] = JSON.parse(r.stdout);
}
const json = JSON.stringify(result, null, 2);
process.stdout.write(`${json}\n`);
await writeFile('bench-results.json', `${json}\n`);
