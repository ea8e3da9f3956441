export * from './nats-connection.js';
export * from './rpc-server.js';
export * from './rpc-client.js';
export * from './jetstream.js';
export * from './messaging.migration.js';
export * from './outbox.js';
export * from './outbox-relay.js';
export * from './event-consumer.js';
