// Builds @ls/wal's optional liblz4 binding (native/lz4-native.c -> build/lz4-native.node) with the
// machine's C compiler and Node's own headers. It never fails the build: without a compiler or
// headers, @ls/wal uses lz4-napi instead (slower), and this says so on stderr.
// Set LSTREAM_NATIVE_REQUIRED=1 to make a failed build an error (CI does, so a broken binding is seen).
// Usage: node native/build.mjs
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = dirname(dirname(fileURLToPath(import.meta.url)));
const source = join(pkg, 'native', 'lz4-native.c');
const target = join(pkg, 'build', 'lz4-native.node');
const required = process.env.LSTREAM_NATIVE_REQUIRED === '1';

function give(reason) {
  process.stderr.write(`@ls/wal: liblz4 binding not built (${reason}); LZ4 runs on lz4-napi instead\n`);
  process.exit(required ? 1 : 0);
}

/** Removes a binding left by an earlier build, so a disabled or failed build never leaves a stale one in use. */
function dropStale() {
  try {
    rmSync(target, { force: true });
  } catch {
    // Nothing more can be done here; the runtime reports a binding that fails to load.
  }
}

if (process.env.LSTREAM_NATIVE === 'off') {
  dropStale();
  give('LSTREAM_NATIVE=off');
}
if (process.platform === 'win32') give('not supported on Windows');

try {
  // Up to date: nothing to do.
  if (existsSync(target) && statSync(target).mtimeMs >= statSync(source).mtimeMs) process.exit(0);

  const version = process.versions.node;
  const nodedir = process.env.npm_config_nodedir; // npm's and node-gyp's setting, passed to install scripts
  const includes = [
    ...(nodedir ? [join(nodedir, 'include', 'node')] : []),
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
    join(homedir(), '.cache', 'node-gyp', version, 'include', 'node'),
    join(homedir(), 'Library', 'Caches', 'node-gyp', version, 'include', 'node'),
    join(homedir(), '.node-gyp', version, 'include', 'node'),
  ].filter((d) => existsSync(join(d, 'node_api.h')));
  if (includes.length === 0) {
    dropStale();
    give("Node's headers (node_api.h) not found");
  }

  const cc = process.env.CC || 'cc';
  const args = ['-O2', '-std=c11', '-D_GNU_SOURCE', '-D_FILE_OFFSET_BITS=64', '-Wall', '-shared', '-fPIC', '-fvisibility=hidden', `-I${includes[0]}`, source];
  if (process.platform === 'darwin') args.push('-undefined', 'dynamic_lookup');
  else args.push('-ldl', '-lm');
  mkdirSync(dirname(target), { recursive: true });
  const tmp = `${target}.${process.pid}.tmp`;
  try {
    execFileSync(cc, [...args, '-o', tmp], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    dropStale();
    give(`${cc} failed: ${String(err.stderr || err.message).trim().split('\n').slice(0, 3).join(' ')}`);
  }
} catch (err) {
  // Anything else (a read-only package directory, say) must not fail an install either.
  dropStale();
  give(String(err.message || err));
}
