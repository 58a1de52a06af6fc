export * from './fault-proxy.js';
export * from './s3rver.js';
export * from './gcs-emulator.js';
export * from './test-helpers.js';
