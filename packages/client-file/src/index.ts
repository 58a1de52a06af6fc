export { FileReplicaClient, createFileReplicaClient, type FileReplicaClientOptions } from './file-client.js';
