import { createS3ReplicaClient } from '@ls/client-s3';
import { ConfigError, registerClientFactory } from '@ls/config';

// The AWS SDK prints a support notice for Node 20 on first use; an operator cannot act on it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// Replica settings carry the S3 client's option names (bucket, path, region, endpoint, ...).
registerClientFactory('s3', (replica) => {
  const { bucket } = replica;
  if (bucket === undefined || bucket === '') {
    throw new ConfigError(`s3 replica '${replica.name}' has no bucket`, {
      hint: "Set 'bucket', or 'url' to s3://bucket/path.",
      ...(replica.line !== undefined ? { line: replica.line } : {}),
    });
  }
  return createS3ReplicaClient({ ...replica, bucket });
});
