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
  /** Where replies to this connection's requests come (`serviceInboxPrefix`); NATS's `_INBOX` when not given. */
  inboxPrefix?: string;
}

/** The inbox prefix a connection was opened with: the Nest RPC client asks for replies there too. */
export const inboxPrefixOf = (nc: NatsConnection): string | undefined => (nc as unknown as { options?: { inboxPrefix?: string } }).options?.inboxPrefix;

/** The one NATS connection a service instance uses for RPC, JetStream and its outbox relay. */
export async function connectNats(opts: NatsOptions): Promise<NatsConnection> {
  const nc = await connect({
    servers: opts.url.split(','),
    name: opts.name,
    user: opts.user,
    pass: opts.password,
    authenticator: opts.credsFile ? credsAuthenticator(readFileSync(opts.credsFile)) : undefined,
    timeout: opts.timeoutMs ?? 3_000,
    ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    waitOnFirstConnect: false,
    // No stack captured for every request and its timer (two Error objects each, a few µs of a streamed
    // answer's every frame): our callers turn NATS errors into problems that name the subject anyway.
    noAsyncTraces: true,
  });
  writeOncePerTurn((nc as unknown as { protocol: Protocol }).protocol);
  return nc;
}

/** The parts of the client's protocol handler (`@nats-io/nats-core`, pinned) that decide when it writes. */
interface Protocol {
  outbound: { length(): number; size(): number; fill(data: Uint8Array, ...more: Uint8Array[]): void };
  pendingLimit: number;
  flushPending(): void;
  sendCommand(cmd: string | Uint8Array, ...payloads: Uint8Array[]): void;
  close(err?: Error): Promise<void>;
}

/**
 * The client writes what is pending at the next microtask checkpoint, which
 * under load means a socket write (and a wake-up of nats-server) for nearly
 * every message: a subscription, then the reply after it, then an ack, each in
 * its own checkpoint. Deferred to `setImmediate`, everything one turn of the
 * event loop produced leaves in one write, in the same order; a message waits
 * at most for the rest of the turn. A full buffer is still written at once,
 * and so is what waits when the connection closes (a reply sent just before).
 */
function writeOncePerTurn(protocol: Protocol): void {
  const encoder = new TextEncoder();
  protocol.sendCommand = function (this: Protocol, cmd: string | Uint8Array, ...payloads: Uint8Array[]) {
    const wasEmpty = this.outbound.length() === 0;
    this.outbound.fill(typeof cmd === 'string' ? encoder.encode(cmd) : cmd, ...payloads);
    if (wasEmpty) setImmediate(() => this.flushPending());
    else if (this.outbound.size() >= this.pendingLimit) this.flushPending();
  };
  const close = protocol.close.bind(protocol);
  protocol.close = (err) => {
    protocol.flushPending();
    return close(err);
  };
}
