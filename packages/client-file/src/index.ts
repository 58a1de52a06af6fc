export { FileReplicaClient, STALE_TEMP_MS, createFileReplicaClient, type FileReplicaClientOptions } from './file-client.js';
