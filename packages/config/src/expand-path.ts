import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * Returns `p` as an absolute path: a leading `~` or `~/` becomes the home directory (as Litestream
 * does; `~user` is not expanded) and a relative path is resolved against `cwd`.
 */
export function expandPath(p: string, cwd: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/')) return join(homedir(), p.slice(2));
  return isAbsolute(p) ? resolve(p) : resolve(cwd, p);
}
