export { LstreamMetrics, OPERATION_SECONDS_BUCKETS, type MetricsOptions } from './lstream-metrics.js';
export { MetricsServerError, metricsHandler, parseListenAddress, serveMetrics } from './serve.js';
