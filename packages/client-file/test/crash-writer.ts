// Child process for the crash test: starts a put whose body never ends, reports progress, and waits
// to be killed with SIGKILL mid-write.
import { FileReplicaClient } from '../src/index.js';

const [root, key] = process.argv.slice(2) as [string, string];
const client = new FileReplicaClient({ root });
async function* endless() {
  for (let i = 0; ; i++) {
    yield Buffer.alloc(256 * 1024, i & 0xff);
    if (i === 8) process.stdout.write('writing\n');
    await new Promise((r) => setTimeout(r, 5));
  }
}
void client.put(key, endless());
