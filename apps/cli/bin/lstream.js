#!/usr/bin/env node
import { main } from '../dist/main.js';

// The AWS SDK (loaded for the first s3 replica) warns that its Node 20 support ends in 2027; an
// operator cannot act on that, so it is not printed.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

process.exitCode = await main(process.argv.slice(2));
