import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

const WRITER = fileURLToPath(new URL('./sqlite-writer.mjs', import.meta.url));

/** Runs the writer scenario in a separate process; resolves once it has died leaving db and -wal. */
export async function writeWithSqlite(dbPath: string, scenario: string, pageSize?: number): Promise<void> {
  const args = [WRITER, dbPath, scenario, ...(pageSize ? [String(pageSize)] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', () => (out.includes('done') ? resolve() : reject(new Error(`writer failed: ${err}`))));
  });
}

export async function tempDir(prefix = 'lstream-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Copies a database and its -wal; returns the paths of the copies. */
export async function copyDbAndWal(src: string, dst: string): Promise<{ db: string; wal: string }> {
  await copyFile(src, dst);
  await copyFile(`${src}-wal`, `${dst}-wal`);
  return { db: dst, wal: `${dst}-wal` };
}

/** Lets SQLite itself checkpoint the database's -wal into it (TRUNCATE), then closes it. */
export function sqliteCheckpoint(dbPath: string): void {
  const db = new Database(dbPath);
  const [busy] = db.prepare('PRAGMA wal_checkpoint(TRUNCATE)').raw().get() as number[];
  if (busy !== 0) throw new Error('checkpoint was busy');
  db.close();
}

export async function fileSize(p: string): Promise<number> {
  return (await stat(p)).size;
}

/** Runs PRAGMA integrity_check and returns its first row. */
export function integrityCheck(dbPath: string): string {
  const db = new Database(dbPath, { readonly: true });
  try {
    return db.pragma('integrity_check', { simple: true }) as string;
  } finally {
    db.close();
  }
}
