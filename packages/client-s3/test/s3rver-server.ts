import { S3Client } from '@aws-sdk/client-s3';
import { S3RVER_KEY, randomName } from '@ls/test-support';
import { S3ReplicaClient, type S3ReplicaClientOptions } from '../src/s3-client.js';

export { S3RVER_KEY, randomName, startS3rver, type S3rverHandle } from '@ls/test-support';

/** Creates a plain SDK client for s3rver at `endpoint` (for setting up what the client under test must cope with). */
export function sdkClient(endpoint: string): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Creates an S3ReplicaClient on `bucket` of s3rver (or a proxy in front of it) under a random prefix. */
export function s3rverClient(endpoint: string, bucket: string, options: Partial<S3ReplicaClientOptions> = {}): S3ReplicaClient {
  return new S3ReplicaClient({
    bucket,
    path: randomName('replica'),
    endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    accessKeyId: S3RVER_KEY,
    secretAccessKey: S3RVER_KEY,
    env: {},
    ...options,
  });
}
