import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityCheckError, checkIntegrity } from './restore.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lstream-integrity-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('checkIntegrity', () => {
  it('reports a file SQLite refuses to read as a failed integrity check, naming the file and the reason', async () => {
    const path = join(dir, 'garbage.db');
    await writeFile(path, Buffer.alloc(8192, 0x5a));
    const err = await checkIntegrity(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityCheckError);
    expect((err as IntegrityCheckError).code).toBe('EINTEGRITY');
    expect((err as Error).message).toMatch(new RegExp(`^${path}: integrity check failed: .*not a database`));
    expect((err as IntegrityCheckError).problems).toHaveLength(1);
  });
});
