export { describeReplicaClientConformance, type ConformanceOptions, type ConformanceTarget } from './suite.js';
