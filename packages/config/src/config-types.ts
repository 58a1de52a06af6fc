import type { DbOptions, ReplicaOptions } from '@ls/core';

/** Holds the log settings of the `logging:` section. */
export interface LoggingConfig {
  level: 'debug' | 'info' | 'warn' | 'error';
  type: 'text' | 'json';
  /** Write logs to stderr instead of stdout. */
  stderr: boolean;
}

/** Describes one replica of a database, after URL parts, defaults and global credentials were applied. */
export interface ReplicaConfig {
  /** Storage kind: `file`, `s3` or `gcs`. */
  type: string;
  /** Unique per database; defaults to `type`. */
  name: string;
  /** The `url` the replica was configured with, when it was. */
  url?: string;
  /** For `file`: absolute directory. For `s3`/`gcs`: key prefix without leading or trailing slash. */
  path?: string;
  bucket?: string;
  region?: string;
  endpoint?: string;
  /** Always set for `s3` replicas. */
  forcePathStyle?: boolean;
  /** Always set for `s3` replicas. */
  skipVerify?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Only the intervals the config set; `name` is never set here (see `name`). */
  options: ReplicaOptions;
  /** Line of this replica entry in the config file. */
  line?: number;
}

/** Describes one database to replicate. */
export interface DbConfig {
  /** The `name` key: how `lstream-server` addresses the database (its API defaults it to the file name). */
  name?: string;
  /** Absolute path of the database, `~` expanded. */
  path: string;
  /** Only the settings the config set. */
  options: Omit<DbOptions, 'logger'>;
  replicas: ReplicaConfig[];
  /** Line of this database entry in the config file. */
  line?: number;
}

/** Holds the `server:` section, read by `lstream-server` (lstream's own; Litestream has none). */
export interface ServerConfig {
  /**
   * Bearer token the status API and its mutations require when the server binds a non-loopback
   * address (`$LSTREAM_SERVER_TOKEN` overrides it). A credential: never log it.
   */
  token?: string;
}

/** Holds a whole lstream (Litestream v0.3) configuration. */
export interface LstreamConfig {
  /** Bind address of the metrics server (`lstream replicate`) or of `lstream-server`'s HTTP server. */
  addr?: string;
  server?: ServerConfig;
  /** Command to run as a subprocess while replicating. */
  exec?: string;
  logging: LoggingConfig;
  dbs: DbConfig[];
  /** Path of the config file this came from. */
  file?: string;
}
