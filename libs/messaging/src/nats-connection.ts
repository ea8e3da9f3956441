import { connect, credsAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { readFileSync } from 'node:fs';

export interface NatsOptions {
  url: string;
  /** Connection name shown by the NATS server (`<service>-<pid>`). */
  name: string;
  user?: string;
  password?: string;
  /** Path to a `.creds` file (per-service NATS user); wins over user/password. */
  credsFile?: string;
  /** Fail fast at start-up instead of waiting forever. */
  timeoutMs?: number;
}

/** The one NATS connection a service instance uses for RPC, JetStream and its outbox relay. */
export async function connectNats(opts: NatsOptions): Promise<NatsConnection> {
  return connect({
    servers: opts.url.split(','),
    name: opts.name,
    user: opts.user,
    pass: opts.password,
    authenticator: opts.credsFile ? credsAuthenticator(readFileSync(opts.credsFile)) : undefined,
    timeout: opts.timeoutMs ?? 3_000,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: false,
  });
}
