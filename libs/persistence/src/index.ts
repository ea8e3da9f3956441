export * from './data-source.js';
export * from './provision.js';
export * from './migrate.js';
export * from './pg-errors.js';
export * from './purge.js';
export * from './retention-pass.js';
export * from './subject-lock.js';
export * from './lower-case-ids.js';
