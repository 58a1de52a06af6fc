import type { Db, DbStatus, LstreamEmitter, StorageOp } from '@ls/core';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Options of `LstreamMetrics`. */
export interface MetricsOptions {
  /** Registry to register the metrics in; default a new one (never prom-client's global registry). */
  registry?: Registry;
  /** process_* and nodejs_* default metrics; default true */
  collectDefault?: boolean;
}

/** Upper bounds of `litestream_replica_operation_seconds`, in seconds: object-store calls, 5 ms to a minute. */
export const OPERATION_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const STORAGE_OPS: readonly StorageOp[] = ['GET', 'PUT', 'DELETE', 'LIST'];

/** What one scrape reads from the databases: their status, read once and shared by every metric. */
interface Scrape {
  /** Databases whose status could be read; one that failed is left out of this scrape's gauges. */
  dbs: DbStatus[];
  /** Paths of the databases whose status could not be read in this scrape. */
  failed: string[];
}

/**
 * Prometheus metrics of lstream, under Litestream v0.3's names (`litestream_*`, same labels and
 * types) plus lstream's own (lag, operation latency and errors, snapshots). Counters follow the
 * events of the emitters it observes; gauges read every observed database's status at scrape time.
 * The metric list is in this package's README.
 */
export class LstreamMetrics {
  readonly registry: Registry;
  readonly contentType: string;

  readonly #sources = new Set<() => Iterable<Db>>();
  #scrape: Promise<Scrape> | undefined;

  // Litestream v0.3, database level.
  readonly #totalWalBytes: Counter<'db'>;
  readonly #syncCount: Counter<'db'>;
  readonly #syncErrorCount: Counter<'db'>;
  readonly #syncSeconds: Counter<'db'>;
  readonly #checkpointCount: Counter<'db' | 'mode'>;
  readonly #checkpointErrorCount: Counter<'db' | 'mode'>;
  readonly #checkpointSeconds: Counter<'db' | 'mode'>;
  // Litestream v0.3, replica level.
  readonly #replicaWalBytes: Counter<'db' | 'name'>;
  readonly #validationTotal: Counter<'db' | 'name' | 'status'>;
  readonly #operationTotal: Counter<'replica_type' | 'operation'>;
  readonly #operationBytes: Counter<'replica_type' | 'operation'>;
  // lstream's own.
  readonly #operationSeconds: Histogram<'replica_type' | 'operation'>;
  readonly #operationErrors: Counter<'replica_type' | 'operation' | 'kind'>;
  readonly #replicaSyncErrors: Counter<'db' | 'name'>;
  readonly #snapshotTotal: Counter<'db' | 'name'>;
  readonly #snapshotBytes: Counter<'db' | 'name'>;
  readonly #shadowWalDropped: Counter<'db'>;
  readonly #statusErrors: Counter<'db'>;

  constructor(options: MetricsOptions = {}) {
    const registry = options.registry ?? new Registry();
    this.registry = registry;
    this.contentType = registry.contentType;
    const registers = [registry];

    // Gauges are set at scrape time from one shared read of every database's status.
    const gauge = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      fill: (g: Gauge<L>, s: Scrape) => void,
    ): Gauge<L> => {
      const g: Gauge<L> = new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect: async () => {
          const s = await this.#read();
          g.reset();
          fill(g, s);
        },
      });
      return g;
    };
    // Counters are fed by events; at scrape time every database and replica gets its series at 0,
    // so rates and alerts work before the first event.
    const counter = <L extends string>(
      name: string,
      help: string,
      labelNames: readonly L[],
      zero?: (c: Counter<L>, s: Scrape) => void,
    ): Counter<L> => {
      const c: Counter<L> = new Counter<L>({
        name,
        help,
        labelNames,
        registers,
        ...(zero && {
          collect: async () => zero(c, await this.#read()),
        }),
      });
      return c;
    };
    const perDb = (c: Counter<'db'>, s: Scrape) => {
      for (const d of s.dbs) c.inc({ db: d.path }, 0);
    };
    const perReplica = (c: Counter<'db' | 'name'>, s: Scrape) => {
      for (const d of s.dbs) for (const r of d.replicas) c.inc({ db: d.path, name: r.name }, 0);
    };
    const perReplicaType = (c: Counter<'replica_type' | 'operation'>, s: Scrape) => {
      for (const d of s.dbs) {
        for (const r of d.replicas) for (const operation of STORAGE_OPS) c.inc({ replica_type: r.type, operation }, 0);
      }
    };

    gauge('litestream_db_size', 'The current size of the real DB', ['db'], (g, s) => {
      for (const d of s.dbs) g.set({ db: d.path }, d.dbBytes);
    });
    gauge('litestream_wal_size', 'The current size of the real WAL', ['db'], (g, s) => {
      for (const d of s.dbs) g.set({ db: d.path }, d.walBytes);
    });
    this.#totalWalBytes = counter('litestream_total_wal_bytes', 'Total number of bytes written to shadow WAL', ['db'], perDb);
    gauge('litestream_shadow_wal_index', 'The current index of the shadow WAL', ['db'], (g, s) => {
      for (const d of s.dbs) if (d.pos) g.set({ db: d.path }, d.pos.index);
    });
    gauge('litestream_shadow_wal_size', 'Current size of shadow WAL on disk', ['db'], (g, s) => {
      for (const d of s.dbs) g.set({ db: d.path }, d.shadowWalBytes);
    });
    this.#syncCount = counter('litestream_sync_count', 'Number of sync operations', ['db'], perDb);
    this.#syncErrorCount = counter('litestream_sync_error_count', 'Number of sync errors', ['db'], perDb);
    this.#syncSeconds = counter('litestream_sync_seconds', 'Time spent syncing shadow WAL, in seconds', ['db'], perDb);
    this.#checkpointCount = counter('litestream_checkpoint_count', 'Number of checkpoint operations', ['db', 'mode']);
    this.#checkpointErrorCount = counter('litestream_checkpoint_error_count', 'Number of checkpoint errors', ['db', 'mode']);
    this.#checkpointSeconds = counter('litestream_checkpoint_seconds', 'Time spent checkpointing WAL, in seconds', ['db', 'mode']);

    this.#replicaWalBytes = counter('litestream_replica_wal_bytes', 'The number wal bytes written', ['db', 'name'], perReplica);
    gauge('litestream_replica_wal_index', 'The current WAL index', ['db', 'name'], (g, s) => {
      for (const d of s.dbs) for (const r of d.replicas) if (r.pos) g.set({ db: d.path, name: r.name }, r.pos.index);
    });
    gauge('litestream_replica_wal_offset', 'The current WAL offset', ['db', 'name'], (g, s) => {
      for (const d of s.dbs) for (const r of d.replicas) if (r.pos) g.set({ db: d.path, name: r.name }, r.pos.offset);
    });
    this.#validationTotal = counter('litestream_replica_validation_total', 'The number of validations performed', ['db', 'name', 'status']);
    this.#operationTotal = counter(
      'litestream_replica_operation_total',
      'The number of replica operations performed',
      ['replica_type', 'operation'],
      perReplicaType,
    );
    this.#operationBytes = counter(
      'litestream_replica_operation_bytes',
      'The number of bytes used by replica operations',
      ['replica_type', 'operation'],
      perReplicaType,
    );

    gauge(
      'litestream_replica_lag_seconds',
      'Seconds since the oldest commit this replica does not hold yet; 0 when caught up',
      ['db', 'name'],
      (g, s) => {
        for (const d of s.dbs) for (const r of d.replicas) g.set({ db: d.path, name: r.name }, r.lagMs / 1000);
      },
    );
    gauge(
      'litestream_replica_last_sync_timestamp_seconds',
      'Unix time of the last successful sync of this replica, in seconds',
      ['db', 'name'],
      (g, s) => {
        for (const d of s.dbs) {
          for (const r of d.replicas) if (r.lastSyncAt) g.set({ db: d.path, name: r.name }, r.lastSyncAt.getTime() / 1000);
        }
      },
    );
    this.#operationSeconds = new Histogram({
      name: 'litestream_replica_operation_seconds',
      help: 'Duration of replica storage operations, failed ones included, in seconds (a GET lasts until its stream ends)',
      labelNames: ['replica_type', 'operation'],
      buckets: OPERATION_SECONDS_BUCKETS,
      registers,
    });
    this.#operationErrors = counter(
      'litestream_replica_operation_errors_total',
      'The number of replica operations that failed, by kind of failure',
      ['replica_type', 'operation', 'kind'],
    );
    this.#replicaSyncErrors = counter(
      'litestream_replica_sync_errors_total',
      'The number of failed replica sync attempts (each is retried)',
      ['db', 'name'],
      perReplica,
    );
    this.#snapshotTotal = counter('litestream_snapshot_total', 'The number of snapshots written', ['db', 'name'], perReplica);
    this.#snapshotBytes = counter('litestream_snapshot_bytes', 'The number of bytes of snapshots written, as stored', ['db', 'name'], perReplica);
    this.#shadowWalDropped = counter(
      'litestream_shadow_wal_dropped_total',
      'The number of unshipped shadow WAL files dropped because the local shadow WAL went past its cap',
      ['db'],
      perDb,
    );

    this.#statusErrors = counter(
      'litestream_db_status_errors_total',
      "The number of scrapes that could not read a database's status; its gauges are left out of those scrapes",
      ['db'],
      (c, s) => {
        perDb(c, s);
        for (const db of s.failed) c.inc({ db }, 0);
      },
    );

    if (options.collectDefault ?? true) collectDefaultMetrics({ register: registry });
  }

  /**
   * Subscribes to `events`; gauges of every Db returned by `dbs()` are read at scrape time. Returns a
   * function that detaches. Observe each emitter once: events observed twice are counted twice.
   */
  observe(events: LstreamEmitter, dbs: () => Iterable<Db>): () => void {
    const offs = [
      events.on('db-sync', (e) => {
        this.#syncCount.inc({ db: e.db });
        this.#syncSeconds.inc({ db: e.db }, e.durationMs / 1000);
        if (e.bytes > 0) this.#totalWalBytes.inc({ db: e.db }, e.bytes);
      }),
      // Litestream v0.3 counts every sync attempt in sync_count, failed ones included (and those in sync_error_count too).
      events.on('db-sync-error', (e) => {
        this.#syncCount.inc({ db: e.db });
        this.#syncErrorCount.inc({ db: e.db });
        this.#syncSeconds.inc({ db: e.db }, e.durationMs / 1000);
      }),
      events.on('checkpoint', (e) => {
        const labels = { db: e.db, mode: e.mode };
        this.#checkpointSeconds.inc(labels, e.durationMs / 1000);
        // As Litestream v0.3: checkpoint_count counts every attempt, checkpoint_error_count the failed ones.
        this.#checkpointCount.inc(labels);
        if (e.error !== undefined) this.#checkpointErrorCount.inc(labels);
      }),
      events.on('replica-sync', (e) => this.#replicaWalBytes.inc({ db: e.db, name: e.replica }, e.bytes)),
      events.on('replica-error', (e) => this.#replicaSyncErrors.inc({ db: e.db, name: e.replica })),
      events.on('validation', (e) => this.#validationTotal.inc({ db: e.db, name: e.replica, status: e.ok ? 'ok' : 'error' })),
      events.on('snapshot', (e) => {
        this.#snapshotTotal.inc({ db: e.db, name: e.replica });
        this.#snapshotBytes.inc({ db: e.db, name: e.replica }, e.bytes);
      }),
      events.on('shadow-dropped', (e) => this.#shadowWalDropped.inc({ db: e.db })),
      events.on('storage-op', (e) => {
        const labels = { replica_type: e.replicaType, operation: e.op };
        this.#operationSeconds.observe(labels, e.durationMs / 1000);
        if (e.errorKind === undefined) {
          // Litestream counts an operation (and its bytes) once it succeeded; failures are counted by kind.
          this.#operationTotal.inc(labels);
          if (e.bytes > 0) this.#operationBytes.inc(labels, e.bytes);
        } else {
          this.#operationErrors.inc({ ...labels, kind: e.errorKind });
        }
      }),
    ];
    const source = () => dbs();
    this.#sources.add(source);
    return () => {
      for (const off of offs) off();
      this.#sources.delete(source);
    };
  }

  /** Returns the Prometheus text exposition of every metric in the registry. */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  /**
   * Reads the status of every observed database once per scrape: every metric collected in the same
   * scrape shares the read in flight. A database seen through two sources counts once. A database
   * whose status cannot be read is left out of this scrape and counted in litestream_db_status_errors_total.
   */
  #read(): Promise<Scrape> {
    this.#scrape ??= (async () => {
      const seen = new Map<string, Db>();
      for (const source of this.#sources) for (const db of source()) if (!seen.has(db.path)) seen.set(db.path, db);
      // One database whose files cannot be examined must not cost the whole scrape: its gauges are
      // left out and litestream_db_status_errors_total counts the failure.
      const dbs = [...seen.values()];
      const results = await Promise.allSettled(dbs.map((db) => db.status()));
      const scrape: Scrape = { dbs: [], failed: [] };
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') {
          scrape.dbs.push(r.value);
        } else {
          scrape.failed.push(dbs[i]!.path);
          this.#statusErrors.inc({ db: dbs[i]!.path });
        }
      });
      return scrape;
    })().finally(() => {
      this.#scrape = undefined;
    });
    return this.#scrape;
  }
}
