import { describe, expect, it } from '@jest/globals';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { RpcClient } from '@ally/messaging';
import type { GatewayConfig } from '../config.js';
import { SessionLiveness } from './session-liveness.js';

/** identity's answers by session id; `down` makes every question fail as an unreachable identity would. */
const identity = (live: Record<string, boolean>) => {
  const asked: string[] = [];
  const state = { down: false };
  const rpc = {
    call: async (_rpc: unknown, input: { sessionId: string }) => {
      asked.push(input.sessionId);
      if (state.down) throw new Error('no responders');
      return { live: live[input.sessionId] ?? false };
    },
  } as unknown as RpcClient;
  return { rpc, asked, state };
};

const quiet = { warn: () => undefined } as unknown as Logger;
/** Not listened to: these tests are about the questions to identity. */
const noNats = undefined as unknown as NatsConnection;
const inMinutes = (m: number) => Math.floor(Date.now() / 1000) + m * 60;

describe(SessionLiveness.name, () => {
  it('keeps refusing a session identity said had ended while identity cannot be reached, after the period and other answers', async () => {
    const { rpc, asked, state } = identity({ 'live-1': true, 'live-2': true });
    const sut = new SessionLiveness(rpc, noNats, { SESSION_CHECK_SECONDS: 0 } as GatewayConfig, quiet);
    await expect(sut.assertLive('ended', inMinutes(10))).rejects.toMatchObject({ status: 401 });
    await sut.assertLive('live-1', inMinutes(10));
    await sut.assertLive('live-2', inMinutes(10));
    state.down = true;
    // An end is final: the token of an ended session does not come back to life on its signature.
    await expect(sut.assertLive('ended', inMinutes(10))).rejects.toMatchObject({ status: 401 });
    // A session not known to have ended is trusted on the signature meanwhile.
    await expect(sut.assertLive('live-1', inMinutes(10))).resolves.toBeUndefined();
    await expect(sut.assertLive('never-asked', inMinutes(10))).resolves.toBeUndefined();
    expect(asked.filter((id) => id === 'ended')).toHaveLength(1);
  });

  it('keeps a live answer for the period, and after identity failed waits before asking it again', async () => {
    const { rpc, asked, state } = identity({ a: true, b: true });
    const sut = new SessionLiveness(rpc, noNats, { SESSION_CHECK_SECONDS: 30 } as GatewayConfig, quiet);
    await sut.assertLive('a', inMinutes(10));
    await sut.assertLive('a', inMinutes(10));
    expect(asked).toEqual(['a']);
    state.down = true;
    // One failed question, not one per request: each would wait for identity's timeout.
    await sut.assertLive('b', inMinutes(10));
    await sut.assertLive('b', inMinutes(10));
    await sut.assertLive('c', inMinutes(10));
    expect(asked).toEqual(['a', 'b']);
  });
});
