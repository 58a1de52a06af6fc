import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Project id the emulator runs under (`demo-` ids never reach Google, by Firebase convention). */
export const GCS_EMULATOR_PROJECT_ID = 'demo-lstream';

/** A running in-process GCS JSON API emulator (firebase-tools' Cloud Storage emulator). */
export interface GcsEmulatorHandle {
  /** `http://127.0.0.1:<port>`: use as `STORAGE_EMULATOR_HOST` or `apiEndpoint`. */
  endpoint: string;
  projectId: string;
  /** Returns a fresh random bucket name (the emulator creates buckets on first use). */
  newBucket(): Promise<string>;
  /** Deletes every object of `bucket` and forgets the bucket. */
  dropBucket(bucket: string): Promise<void>;
  /** Names of the objects `bucket` holds, for tests that inspect the server side. */
  objectNames(bucket: string): string[];
  stop(): Promise<void>;
}

// firebase-tools' internals, typed as far as this helper uses them. They are not a public API (the
// package has no "exports" map, so deep requires work): firebase-tools is pinned exactly.
interface StorageLayerLike {
  createBucket(id: string): void;
  deleteObject(request: { bucketId: string; decodedObjectId: string }): Promise<void>;
}
interface StorageEmulatorLike {
  readonly adminStorageLayer: StorageLayerLike;
  _rulesRuntime: { start(autoDownload?: boolean): Promise<void>; stop(): Promise<void> };
  _rulesManager: { start(): Promise<unknown>; stop(): Promise<void>; getRuleset(bucket: string): unknown };
  _files: Map<string, { metadata: { bucket: string; name: string } }>;
  _buckets: Map<string, unknown>;
}
type StorageEmulatorClass = new (args: { projectId: string; host: string; port: number; rules: unknown; auto_download: boolean }) => StorageEmulatorLike;
interface ExpressAppLike {
  listen(port: number, host: string, callback: () => void): Server;
}

const require = createRequire(import.meta.url);

/**
 * Starts firebase-tools' Cloud Storage emulator in this process on 127.0.0.1 and a free port, without
 * its Java security-rules runtime: the GCS JSON API routes (`/storage/v1/...`, `/upload/...`,
 * `/download/...`) always use the emulator's admin storage layer, which never consults rules, so
 * nothing is downloaded and no Java is needed. It makes no outside connection. Object bytes live in a
 * private temporary directory (not the shared `$TMPDIR/firebase/storage/blobs` the emulator uses by
 * default, which one emulator's `stop()` would delete under another's feet); `stop()` removes it.
 *
 * The emulator keeps objects in memory and on disk, accepts at most 130 MB per request and finalizes
 * a resumable upload on its first PUT (see client-gcs's README for what that means for clients).
 */
export async function startGcsEmulator(options: { projectId?: string } = {}): Promise<GcsEmulatorHandle> {
  const projectId = options.projectId ?? GCS_EMULATOR_PROJECT_ID;
  const dir = await mkdtemp(join(tmpdir(), 'lstream-gcs-emulator-'));
  const { StorageEmulator } = require('firebase-tools/lib/emulator/storage/index.js') as { StorageEmulator: StorageEmulatorClass };
  const { createApp } = require('firebase-tools/lib/emulator/storage/server.js') as {
    createApp(projectId: string, emulator: StorageEmulatorLike): Promise<ExpressAppLike>;
  };
  const blobs = join(dir, 'blobs');
  // The constructor reads the blob directory from this method, before any field of a subclass exists.
  let port = 0;
  class PrivateDirStorageEmulator extends (StorageEmulator as unknown as new (...args: unknown[]) => StorageEmulatorLike) {
    getPersistenceTmpDir(): string {
      return blobs;
    }
    getInfo(): { name: string; host: string; port: number } {
      return { name: 'storage', host: '127.0.0.1', port };
    }
  }
  const emu = new (PrivateDirStorageEmulator as unknown as StorageEmulatorClass)({
    projectId,
    host: '127.0.0.1',
    port: 0,
    rules: { name: 'none', content: '' },
    auto_download: false,
  });
  // No rules runtime (Java + a JAR download): the JSON API routes never ask it.
  emu._rulesRuntime = { start: async () => {}, stop: async () => {} };
  emu._rulesManager = { start: async () => undefined, stop: async () => {}, getRuleset: () => undefined };
  // Not `emu.start()`: it listens on the configured port (0 means its default 9199). Bucket metadata
  // (selfLink) asks the process-wide registry for the emulator's address, so the first emulator of the
  // process registers there; a second one's selfLinks then name the first's port, which no client
  // reads. Resumable-upload URLs are built from each request's Host header.
  const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry.js') as {
    EmulatorRegistry: { get(name: string): unknown; set(name: string, instance: unknown): void; clear(name: string): void };
  };
  const app = await createApp(projectId, emu);
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  port = (server.address() as AddressInfo).port;
  const registered = EmulatorRegistry.get('storage') === undefined;
  if (registered) EmulatorRegistry.set('storage', emu);
  const endpoint = `http://127.0.0.1:${port}`;

  const namesIn = (bucket: string) => [...emu._files.values()].filter((f) => f.metadata.bucket === bucket).map((f) => f.metadata.name);
  return {
    endpoint,
    projectId,
    async newBucket() {
      const name = `b-${randomBytes(6).toString('hex')}`;
      emu.adminStorageLayer.createBucket(name);
      return name;
    },
    async dropBucket(bucket) {
      for (const name of namesIn(bucket)) await emu.adminStorageLayer.deleteObject({ bucketId: bucket, decodedObjectId: name });
      emu._buckets.delete(bucket);
    },
    objectNames: namesIn,
    async stop() {
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
      if (registered && EmulatorRegistry.get('storage') === emu) EmulatorRegistry.clear('storage');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
