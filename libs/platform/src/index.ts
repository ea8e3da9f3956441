export * from './config.js';
export * from './logger.js';
export * from './tokens.js';
export * from './problem.filter.js';
export * from './readiness.js';
export * from './platform.module.js';
export * from './service-definition.js';
export * from './run-service.js';
