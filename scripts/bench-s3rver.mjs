// Runs s3rver (patched: see patches/) on 127.0.0.1 and a free port in its own process, for the
// storage benchmarks. Usage: node bench-s3rver.mjs DIR — prints the port, runs until SIGTERM.
import { mkdirSync } from 'node:fs';
import S3rver from 's3rver';

const dir = process.argv[2];
mkdirSync(dir, { recursive: true });
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir });
const { port } = await server.run();
process.stdout.write(`${port}\n`);
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
