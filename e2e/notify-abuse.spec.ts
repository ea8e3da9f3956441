import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { createEnvelope, IdentityRpc, NotifyRpc, privacyRpcs, type PrivacyExport } from '@ally/contracts';
import type { BrevoEmulator } from '@ally/emulators';
import type { RpcClient } from '@ally/messaging';
import { confirmEmail, lastEvent, publishEvent, waitFor, type TestEnv } from '@ally/testing';
import { startNotifyWorld, type NotifyWorld } from './notify-world.js';

const PASSWORD = 'Leuchtfeuer über der Förde';
const SECRET = 'brevo-webhook-secret-for-tests';

/** What notify does against someone trying to misuse it, and for a subject who asked to be forgotten. */
describe('notify: limits, erased owners, exports by address', () => {
  let world: NotifyWorld;
  let env: TestEnv;
  let brevo: BrevoEmulator;
  let rpc: RpcClient;

  beforeAll(async () => {
    world = await startNotifyWorld({ BREVO_WEBHOOK_SECRET: SECRET, NOTIFY_POLL_MS: '50', NOTIFY_MAX_PER_ADDRESS_PER_HOUR: '3', COMPLIANCE_EMAIL: 'compliance@ally.example' });
    ({ env, brevo, rpc } = world);
  });

  afterAll(async () => {
    await world?.close();
  });

  const register = (email: string) => rpc.call(IdentityRpc.register, { email, password: PASSWORD, firstName: 'Ole', lastName: 'Ohm', locale: 'en' });
  const publish = async (type: string, data: unknown) => {
    const envelope = createEnvelope({ type, source: type.split('.')[0], data });
    await publishEvent(env, envelope);
    return envelope.id;
  };
  const consumed = (eventId: string) => waitFor(async () => (await env.sql(`SELECT 1 FROM notify.inbox WHERE event_id = $1`, [eventId])).length > 0 || undefined, 'the event to be consumed');

  it('sends one address at most NOTIFY_MAX_PER_ADDRESS_PER_HOUR mails of one kind an hour, required ones included (an account on an address it never confirmed cannot flood it), and a flood of one kind takes nothing from the others', async () => {
    const { user } = await register('victim@example.eu');
    const actor = { userId: user.id, platformRoles: [] };
    for (let i = 0; i < 6; i++) await rpc.call(IdentityRpc.updateSettings, { restrictToEu: i % 2 === 0 }, { actor });
    await rpc.call(IdentityRpc.forgotPassword, { email: 'victim@example.eu' });
    await waitFor(async () => (brevo.mails('victim@example.eu').length >= 5 ? true : undefined), 'the mails');
    await waitFor(async () => (await env.sql(`SELECT 1 FROM notify.deliveries WHERE status IN ('pending', 'sending')`)).length === 0 || undefined, 'nothing left to send');
    const subjects = brevo.mails('victim@example.eu').map((m) => m.subject);
    // The confirmation, three of the six settings notices, and the reset link the owner asked for after them.
    expect(subjects).toHaveLength(5);
    expect(subjects).toContain('Please confirm your email address');
    expect(subjects.filter((s) => /password/i.test(s ?? ''))).toHaveLength(1);
  });

  it('sends the warning of a sign-in from a new device past the cap, and a flood of reset requests buries no live link: past three an hour they change nothing', async () => {
    const { user } = await register('warned@example.eu');
    const resets: string[] = [];
    for (let i = 0; i < 3; i++) {
      await rpc.call(IdentityRpc.forgotPassword, { email: 'warned@example.eu' });
      resets.push((await lastEvent<{ userId: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === user.id && !resets.includes(e.id))).id);
    }
    // Anyone may ask for the address: more requests make no link, and the third one mailed stays live.
    for (let i = 0; i < 5; i++) await rpc.call(IdentityRpc.forgotPassword, { email: 'warned@example.eu' });
    expect(await env.sql(`SELECT count(*)::int AS n FROM identity.one_time_tokens WHERE user_id = $1 AND purpose = 'password_reset'`, [user.id])).toEqual([{ n: 3 }]);
    expect(await env.sql(`SELECT count(*)::int AS n FROM identity.one_time_tokens WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL`, [user.id])).toEqual([{ n: 1 }]);
    // Once the live link is used, the owner's next request makes one again (the hour's count no longer stands in the way).
    const { resetToken } = (await lastEvent<{ userId: string; resetToken: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === user.id)).data;
    await rpc.call(IdentityRpc.resetPassword, { token: resetToken, password: 'Ein ganz neues Passwort 7' });
    await rpc.call(IdentityRpc.forgotPassword, { email: 'warned@example.eu' });
    expect(await env.sql(`SELECT count(*)::int AS n FROM identity.one_time_tokens WHERE user_id = $1 AND purpose = 'password_reset' AND used_at IS NULL`, [user.id])).toEqual([{ n: 1 }]);
    resets.push((await lastEvent<{ userId: string }>(env, 'identity.password.reset-requested', (e) => e.data.userId === user.id && !resets.includes(e.id))).id);
    for (const id of resets) await consumed(id);
    await waitFor(async () => (await env.sql(`SELECT 1 FROM notify.deliveries WHERE status IN ('pending', 'sending')`)).length === 0 || undefined, 'nothing left to send');
    // The confirmation and three links: the fourth is past this world's cap of three reset mails an hour.
    expect(brevo.mails('warned@example.eu')).toHaveLength(4);
    const signedIn = await publish('identity.user.signed-in', { userId: user.id, email: 'warned@example.eu', firstName: 'Ole', locale: 'en', ip: '203.0.113.9', method: 'password', newDevice: true });
    await consumed(signedIn);
    await waitFor(async () => (brevo.mails('warned@example.eu').length === 5 ? true : undefined), 'the sign-in warning');
  });

  it('never holds back what the law requires a subject be told, nor escalations to the compliance team, over the cap', async () => {
    const { user } = await register('legal@example.eu');
    const escalations: string[] = [];
    const exports: string[] = [];
    for (let i = 0; i < 4; i++) {
      escalations.push(await publish('privacy.request.escalated', { requestId: randomUUID(), type: 'erasure', status: 'failed', dueAt: new Date().toISOString(), reason: 'failed' }));
      exports.push(
        await publish('privacy.export.ready', { requestId: randomUUID(), userId: user.id, email: 'legal@example.eu', firstName: 'Ole', locale: 'en', downloadUntil: new Date().toISOString(), downloadPath: `/privacy/requests/${randomUUID()}/download` }),
      );
    }
    for (const id of [...escalations, ...exports]) await consumed(id);
    await waitFor(async () => (await env.sql(`SELECT 1 FROM notify.deliveries WHERE status IN ('pending', 'sending')`)).length === 0 || undefined, 'nothing left to send');
    expect(brevo.mails('compliance@ally.example')).toHaveLength(4);
    // The verification mail, then four exports: past the cap of three.
    expect(brevo.mails('legal@example.eu').filter((m) => m.subject === 'Your data export is ready')).toHaveLength(4);
  });

  it("mails no billing news to an owner erased from notify, and keeps nothing of them; a subject's export holds the mails to their address from before their account", async () => {
    const { user: owner } = await register('owner.weg@example.eu');
    await confirmEmail(env, owner.id);
    const org = await rpc.call(IdentityRpc.createOrg, { name: 'Weg GmbH' }, { actor: { userId: owner.id, platformRoles: [] } });
    await rpc.call(IdentityRpc.createInvitation, { orgId: org.id, email: 'gast@example.eu', role: 'member' }, { actor: { userId: owner.id, platformRoles: [] } });
    await waitFor(async () => (brevo.mails('gast@example.eu').length ? true : undefined), 'the invitation');
    const { user: guest } = await register('gast@example.eu');
    await waitFor(async () => (brevo.mails('gast@example.eu').length >= 2 ? true : undefined), 'the verification mail');
    // Confirmed: what reached the address before the account is theirs (see notify-flow for an account not confirmed).
    await confirmEmail(env, guest.id);
    await waitFor(async () => (brevo.mails('gast@example.eu').length >= 3 ? true : undefined), 'the welcome mail');
    const exported: PrivacyExport = await rpc.call(privacyRpcs('notify').export, { userId: guest.id, scope: 'all' });
    expect((exported.categories['delivery-log'] as { template: string }[]).map((d) => d.template).sort()).toEqual(['invitation', 'verify-email', 'welcome']);
    // An export of one workspace: the invitation is the organisation's mail, the verification the account's own.
    const templatesIn = async (scope: string) =>
      ((await rpc.call(privacyRpcs('notify').export, { userId: guest.id, scope })).categories['delivery-log'] as { template: string }[]).map((d) => d.template);
    expect(await templatesIn(org.id)).toEqual(['invitation']);
    expect(await templatesIn('private')).toEqual(['verify-email', 'welcome']);
    // Erasing one workspace takes its mails and leaves the others.
    expect((await rpc.call(privacyRpcs('notify').erase, { userId: guest.id, scope: org.id }, { timeoutMs: 10_000 })).affected).toEqual({ 'delivery-log': 1 });
    expect(await templatesIn(org.id)).toEqual([]);
    expect(await templatesIn('private')).toEqual(['verify-email', 'welcome']);

    await rpc.call(privacyRpcs('notify').erase, { userId: owner.id, scope: 'all' }, { timeoutMs: 10_000 });
    // The step tried again (its answer lost): the last mail went once, and notify remembers it did.
    await rpc.call(privacyRpcs('notify').erase, { userId: owner.id, scope: 'all' }, { timeoutMs: 10_000 });
    expect(brevo.delivered('owner.weg@example.eu').filter((m) => m.subject === 'Your Ally account is being erased')).toHaveLength(1);
    expect(await env.sql(`SELECT farewell_sent_at IS NOT NULL AS sent FROM notify.erased_subjects`)).toEqual([{ sent: true }]);
    const before = brevo.mails('owner.weg@example.eu').length;
    await consumed(await publish('billing.payment.failed', { workspace: org.id, invoiceId: 'in_1', ownerEmail: null, locale: 'de' }));
    await consumed(await publish('billing.payment.failed', { workspace: `private:${owner.id}`, invoiceId: 'in_2', ownerEmail: null, locale: 'de' }));
    expect(brevo.mails('owner.weg@example.eu')).toHaveLength(before);
    expect(await env.sql(`SELECT 1 FROM notify.deliveries WHERE user_id = $1`, [owner.id])).toEqual([]);
  });

  it('takes a Brevo event named after an object property as no status (it was a 500 that lost its batch)', async () => {
    const answer = await rpc.call(NotifyRpc.brevoWebhook, {
      secret: SECRET,
      payload: [
        { event: 'constructor', email: 'x@example.eu', 'message-id': '<m1@brevo>' },
        { event: 'hard_bounce', email: 'hart@example.eu', 'message-id': '<m2@brevo>' },
      ],
    });
    expect(answer).toEqual({ applied: 1, skipped: 0 });
    expect(await env.sql(`SELECT reason FROM notify.suppressions`)).toEqual([{ reason: 'hard_bounce' }]);
  });

  it("a subject's access export holds their address's entry on the suppression list, in the account's own part", async () => {
    const { user } = await register('spam.export@example.eu');
    await confirmEmail(env, user.id);
    await rpc.call(NotifyRpc.brevoWebhook, { secret: SECRET, payload: { event: 'spam', email: 'Spam.Export@example.eu' } });
    const exported: PrivacyExport = await rpc.call(privacyRpcs('notify').export, { userId: user.id, scope: 'all' });
    expect(exported.categories['suppression-list']).toEqual([{ reason: 'spam', created_at: expect.anything() }]);
    expect((await rpc.call(privacyRpcs('notify').export, { userId: user.id, scope: 'private' })).categories['suppression-list']).toHaveLength(1);
    expect((await rpc.call(privacyRpcs('notify').export, { userId: user.id, scope: randomUUID() })).categories['suppression-list']).toEqual([]);
  });
});
