import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { jetstream } from '@nats-io/jetstream';
import { eventsStreamName, IdentityRpc } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, waitFor, type TestEnv } from '@ally/testing';
import { identityService } from '../src/index.js';

describe('identity registration over NATS', () => {
  let env: TestEnv;
  let rpc: RpcClient;

  beforeAll(async () => {
    env = await createTestEnv();
    await env.start(identityService);
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
  });

  afterAll(async () => {
    await rpc?.close();
    await env?.close();
  });

  it('registers a user, answers tokens and publishes identity.user.registered through the outbox', async () => {
    const reply = await rpc.call(IdentityRpc.register, {
      email: 'Anna.Schmidt@example.eu',
      password: 'correct horse battery staple',
      firstName: 'Anna',
      lastName: 'Schmidt',
      locale: 'en',
    });
    expect(reply.user).toMatchObject({ email: 'anna.schmidt@example.eu', emailVerified: false, settings: { restrictToEu: true } });
    expect(reply.accessToken.split('.')).toHaveLength(3);

    const jsm = await jetstream(await env.nats()).jetstreamManager();
    const msg = await waitFor(
      () => jsm.streams.getMessage(eventsStreamName(env.prefix), { last_by_subj: env.subject('ally.evt.identity.user.registered') }),
      'the registered event in the stream',
    );
    expect(msg?.json<{ data: { userId: string } }>().data.userId).toBe(reply.user.id);
  });

  it('refuses a common password with a 400 naming the field', async () => {
    await expect(
      rpc.call(IdentityRpc.register, { email: 'x@example.eu', password: 'password1234', firstName: 'Max', lastName: 'Muster' }),
    ).rejects.toMatchObject({ status: 400, extra: { errors: [{ field: 'password' }] } });
  });
});
