/**
 * Subject names are part of the wire contract: never rename one without a
 * migration plan for in-flight messages and durable consumers.
 */
export const EVENTS_STREAM = 'ALLY_EVENTS';
export const EVENT_SUBJECT_ROOT = 'ally.evt';
export const RPC_SUBJECT_ROOT = 'ally.rpc';
export const DEAD_LETTER_ROOT = 'ally.dlq';

/** `ally.evt.identity.user.registered` for event type `identity.user.registered`. */
export const eventSubject = (type: string): string => `${EVENT_SUBJECT_ROOT}.${type}`;
export const deadLetterSubject = (consumer: string): string => `${DEAD_LETTER_ROOT}.${consumer}`;

/** Applies `NATS_SUBJECT_PREFIX` (empty in production, unique per test run). */
/**
 * Where replies to a service's requests come (its NATS connection's inbox prefix): its NATS user may
 * subscribe there only, so no other service reads its replies (tools/deploy/nats-permissions.ts says the same).
 */
export const serviceInboxPrefix = (service: string): string => `_INBOX_${service}`;

export const withPrefix = (prefix: string, subject: string): string => (prefix ? `${prefix}.${subject}` : subject);

/** One stream per prefix, so parallel test runs never share or overlap. */
export const eventsStreamName = (prefix: string): string =>
  prefix ? `${EVENTS_STREAM}_${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}` : EVENTS_STREAM;
