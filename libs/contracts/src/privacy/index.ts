export * from './privacy.data-categories.js';
export * from './data-category-registry.js';
export * from './processors.js';
export * from './privacy.schemas.js';
export * from './privacy.replies.js';
export * from './privacy.rpc.js';
export * from './privacy-retention.rpc.js';
export * from './privacy.events.js';
