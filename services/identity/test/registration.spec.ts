import { describe, expect, it } from '@jest/globals';
import { jetstream } from '@nats-io/jetstream';
import { eventsStreamName, IdentityRpc } from '@ally/contracts';
import { waitFor } from '@ally/testing';
import { identityWorld } from './identity-world.js';

describe('identity registration over NATS', () => {
  const world = identityWorld();

  it('registers a user, answers tokens and publishes identity.user.registered through the outbox', async () => {
    const reply = await world.rpc.call(IdentityRpc.register, {
      email: 'Anna.Schmidt@example.eu',
      password: 'correct horse battery staple',
      firstName: 'Anna',
      lastName: 'Schmidt',
      locale: 'en',
    });
    expect(reply.user).toMatchObject({ email: 'anna.schmidt@example.eu', emailVerified: false, settings: { restrictToEu: true } });
    expect(reply.accessToken.split('.')).toHaveLength(3);

    const jsm = await jetstream(await world.env.nats()).jetstreamManager();
    const msg = await waitFor(
      () => jsm.streams.getMessage(eventsStreamName(world.env.prefix), { last_by_subj: world.env.subject('ally.evt.identity.user.registered') }),
      'the registered event in the stream',
    );
    expect(msg?.json<{ data: { userId: string } }>().data.userId).toBe(reply.user.id);
  });

  it("answers chat's routing question with the setting and the memberships, nothing else of the user", async () => {
    const reply = await world.rpc.call(IdentityRpc.register, { email: 'route@example.eu', password: 'Kraniche über dem Bodden', firstName: 'Rosa', lastName: 'Ring', organizationName: 'Ring KG' });
    const routing = await world.rpc.call(IdentityRpc.getRouting, {}, { actor: { userId: reply.user.id, platformRoles: [] } });
    const [org] = reply.user.memberships;
    expect(routing).toEqual({ id: reply.user.id, restrictToEu: true, memberships: [{ orgId: org.orgId, role: 'owner' }] });
  });

  it('refuses a common password with a 400 naming the field', async () => {
    await expect(
      world.rpc.call(IdentityRpc.register, { email: 'x@example.eu', password: 'password1234', firstName: 'Max', lastName: 'Muster' }),
    ).rejects.toMatchObject({ status: 400, extra: { errors: [{ field: 'password' }] } });
  });
});
