import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/**
 * Core NATS messages every replica hears (no queue group): signals that make
 * something happen sooner, which a replica that misses one still learns
 * another way. Nothing is kept; a closed connection sends nothing.
 */
export function broadcast(nc: NatsConnection, subject: string, message: unknown): void {
  if (!nc.isClosed()) nc.publish(subject, JSON.stringify(message));
}

/** Hears `subject`'s broadcasts as JSON (`what` names them in the log when one is malformed). Returns the stop. */
export function listenToBroadcasts<T>(nc: NatsConnection, subject: string, logger: Logger, what: string, hear: (message: T) => void): () => void {
  const sub = nc.subscribe(subject, {
    callback: (err, msg) => {
      if (err) return;
      try {
        hear(msg.json<T>());
      } catch {
        logger.warn(`ignored a malformed ${what} message`);
      }
    },
  });
  return () => {
    if (!sub.isClosed()) sub.unsubscribe();
  };
}
