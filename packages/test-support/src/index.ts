export * from './fault-proxy.js';
export * from './s3rver.js';
export * from './gcs-emulator.js';
