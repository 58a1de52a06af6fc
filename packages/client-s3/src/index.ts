export { S3ReplicaClient, createS3ReplicaClient, type S3ReplicaClientOptions } from './s3-client.js';
export { lookupBucketRegion, normalizeLocationConstraint, DEFAULT_REGION, type RegionSource } from './region.js';
