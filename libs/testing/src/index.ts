export * from './test-env.js';
export * from './http.js';
export * from './openapi-conformance.js';
export * from './wait-for.js';
export * from './nats-server.js';
export * from './postgres-server.js';
export * from './events.js';
export type { RunningService } from '@ally/platform';
