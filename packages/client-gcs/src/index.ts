export {
  GcsReplicaClient,
  createGcsReplicaClient,
  parseGcsUrl,
  DEFAULT_DELETE_CONCURRENCY,
  DEFAULT_MAX_RETRIES,
  DEFAULT_MAX_RETRY_DELAY_MS,
  DEFAULT_TOTAL_TIMEOUT_MS,
  DEFAULT_READ_IDLE_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DEFAULT_RESUMABLE_THRESHOLD,
  DEFAULT_UPLOAD_CHUNK_SIZE,
  type GcsReplicaClientOptions,
} from './gcs-client.js';
export { isTransientGcsError, mapGcsError, type GcsOperation } from './errors.js';
