export { ConfigError, type ConfigErrorOptions } from './config-error.js';
export type { DbConfig, LoggingConfig, LstreamConfig, ReplicaConfig } from './config-types.js';
export { parseConfig, type ParseConfigOptions } from './parse-config.js';
export { loadConfigFile, type LoadConfigOptions } from './load-config-file.js';
export { resolveConfigPath } from './resolve-config-path.js';
export { isReplicaUrl, parseReplicaUrl } from './replica-url.js';
export { replicaConfigFromUrl } from './replica-config-from-url.js';
export { createReplicaClient, registerClientFactory, type ClientFactory } from './client-factory.js';
export { redactConfig } from './redact-config.js';
export { REPLICA_LOCK_NAME, startDatabases, type RunningDatabases } from './run-databases.js';
export { redactText } from './redact-text.js';
export type { ServerConfig } from './config-types.js';
export { createLogger, type Level, type LoggerOptions } from './run/logger.js';
export { collectSecrets, CREDENTIAL_ENV_VARS } from './run/secrets.js';
export { splitCommand } from './run/shell-words.js';
export {
  CHILD_STOP_GRACE_MS,
  FINAL_SYNC_DEADLINE_MS,
  FINAL_SYNC_MARGIN_MS,
  FORCED_EXIT_CODE,
  SHUTDOWN_DEADLINE_MS,
  STOP_SIGNALS,
  handleStopSignals,
  startExec,
  superviseUntilStopped,
  waitUntilStopped,
  type ExecChild,
  type StopReason,
  type StopSignals,
} from './run/exec.js';
export { normalizeArgv } from './run/argv.js';
export { guardStdio } from './run/stdio.js';
