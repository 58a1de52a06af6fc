export * from './errors.js';
export * from './pos.js';
export * from './keys.js';
export * from './client.js';
export * from './layout.js';
export * from './logger.js';
export * from './replica-store.js';
