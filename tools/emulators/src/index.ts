export * from './http-server.js';
export * from './brevo/brevo-emulator.js';
export * from './openai/openai-emulator.js';
export * from './stripe/stripe-emulator.js';
