#!/usr/bin/env node
import { main } from '../dist/main.js';

// The AWS SDK (loaded for the first s3 replica) warns that its Node 20 support ends in 2027; an
// operator cannot act on that, so it is not printed.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// A reader that stops early (`lstream wal URL | head -1`) is not an error of lstream's: stop quietly,
// as other Unix tools do. Output that cannot be written (a full disk) is one line and exit 1.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  process.stderr.write(`lstream: cannot write to standard output: ${err.message}\n`);
  process.exit(1);
});

process.exitCode = await main(process.argv.slice(2));
