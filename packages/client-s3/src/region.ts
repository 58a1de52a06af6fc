import { GetBucketLocationCommand, HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { isAbortError } from '@ls/core';
import { isDenied } from './errors.js';

/** The region S3 falls back to, and the one S3-compatible services expect by default. */
export const DEFAULT_REGION = 'us-east-1';

/** How a bucket's region was found. */
export type RegionSource = 'configured' | 'environment' | 'endpoint-default' | 'GetBucketLocation' | 'HeadBucket' | 'fallback';

/** Returns the region name for a GetBucketLocation `LocationConstraint` (empty means us-east-1, `EU` eu-west-1). */
export function normalizeLocationConstraint(constraint: string | null | undefined): string {
  if (constraint === undefined || constraint === null || constraint === '') return DEFAULT_REGION;
  if (constraint === 'EU') return 'eu-west-1';
  return constraint;
}

function regionHeader(err: unknown): string | undefined {
  const headers = (err as { $response?: { headers?: Record<string, string | undefined> } } | undefined)?.$response?.headers;
  const r = headers?.['x-amz-bucket-region'];
  return typeof r === 'string' && r !== '' ? r : undefined;
}

/**
 * Looks up the region of `bucket` through `s3` (a client in any region, usually us-east-1).
 * GetBucketLocation first; when that is denied (a common IAM gap, Litestream #107/#574/#621), the
 * `x-amz-bucket-region` header of HeadBucket, which S3 sends even on a 403; failing both, us-east-1,
 * leaving the SDK's region-redirect handling to correct it. Errors other than a denial (missing
 * bucket, network) are thrown.
 */
export async function lookupBucketRegion(
  s3: S3Client,
  bucket: string,
  signal?: AbortSignal,
): Promise<{ region: string; source: RegionSource; deniedError?: unknown }> {
  let denied: unknown;
  try {
    const out = await s3.send(new GetBucketLocationCommand({ Bucket: bucket }), { abortSignal: signal });
    return { region: normalizeLocationConstraint(out.LocationConstraint), source: 'GetBucketLocation' };
  } catch (err) {
    if (!isDenied(err)) throw err;
    denied = err;
  }
  try {
    const out = await s3.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal });
    if (out.BucketRegion) return { region: out.BucketRegion, source: 'HeadBucket', deniedError: denied };
  } catch (err) {
    if (isAbortError(err) || signal?.aborted) throw err;
    const r = regionHeader(err);
    if (r) return { region: r, source: 'HeadBucket', deniedError: denied };
  }
  return { region: DEFAULT_REGION, source: 'fallback', deniedError: denied };
}
