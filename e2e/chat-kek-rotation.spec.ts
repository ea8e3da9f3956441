import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHmac, randomBytes } from 'node:crypto';
import { privacyRpcs } from '@ally/contracts';
import { chatService } from '@ally/chat';
import { RpcClient } from '@ally/messaging';
import type { RunningService } from '@ally/testing';
import { startChatWorld, type ChatWorld } from './chat-world.js';
import { chatEnv } from './service-env.js';

const PASSWORD = 'Schlüsselwechsel im Herbst';
const OLD = randomBytes(32).toString('base64');
const NEW = randomBytes(32).toString('base64');
/** The fingerprint chat stores with what a KEK wrapped or keyed. */
const kekId = (kek: string) => createHmac('sha256', Buffer.from(kek, 'base64')).update('ally chat kek id').digest('hex').slice(0, 16);

describe('rotating CHAT_KEK', () => {
  let world: ChatWorld;
  let chat: RunningService;
  const startChat = async (vars: Record<string, string>) => (chat = await world.env.start(chatService, chatEnv(world.llm, { QUOTA_PROVIDER: 'none', ...vars })));
  const restartChat = async (vars: Record<string, string>) => {
    await world.env.stop(chat);
    return startChat(vars);
  };
  const user = async (email: string) => {
    const reg = await world.http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Rita', lastName: 'Rotation' });
    const token: string = reg.body.accessToken;
    const conversation: string = (await world.http.post('/v1/conversations', { workspace: 'private' }, token)).body.id;
    return { id: reg.body.user.id as string, token, conversation };
  };
  const say = (u: { token: string; conversation: string }, content: string) => world.http.post(`/v1/conversations/${u.conversation}/messages`, { content }, u.token);
  const contents = async (u: { token: string; conversation: string }) =>
    (await world.http.get(`/v1/conversations/${u.conversation}`, u.token)).body.messages.map((m: { content: string }) => m.content);

  beforeAll(async () => {
    world = await startChatWorld({ chat: { CHAT_KEK: OLD } });
    chat = world.chat;
  });

  afterAll(async () => {
    await world?.close();
  });

  it('opens what the earlier key wrapped, re-wraps it, keeps erased subjects erased, and says when the earlier key may go', async () => {
    const lea = await user('lea@rotation.example.eu');
    expect((await say(lea, 'Geheimnis vor dem Wechsel')).status).toBe(201);
    const ola = await user('ola@rotation.example.eu');
    expect((await say(ola, 'Von früher')).status).toBe(201);
    // A key stored before keys were told apart (as the release before this one wrote them).
    await world.env.sql(`UPDATE chat.data_keys SET kek_id = NULL WHERE user_id = $1`, [ola.id]);
    const ines = await user('ines@rotation.example.eu');
    expect((await say(ines, 'Bitte vergessen')).status).toBe(201);
    const rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await rpc.connect();
    await rpc.call(privacyRpcs('chat').erase, { userId: ines.id, scope: 'all' });
    expect(await world.env.sql(`SELECT kek_id FROM chat.erased_subjects`)).toEqual([{ kek_id: kekId(OLD) }]);

    // The new key wraps, the old one only opens; without the old one, chat would not start.
    await world.env.stop(chat);
    await expect(world.env.start(chatService, chatEnv(world.llm, { QUOTA_PROVIDER: 'none', CHAT_KEK: NEW }))).rejects.toThrow(
      `Data keys are wrapped under a KEK chat was not given (id ${kekId(OLD)})`,
    );
    await startChat({ CHAT_KEK: NEW, CHAT_KEK_UNWRAP_ONLY: OLD });
    expect(await contents(lea)).toEqual(['Geheimnis vor dem Wechsel', 'Echo: Geheimnis vor dem Wechsel']);
    expect(await contents(ola)).toEqual(['Von früher', 'Echo: Von früher']);
    expect((await say(lea, 'Und danach')).status).toBe(201);
    expect((await world.http.post('/v1/conversations', { workspace: 'private' }, ines.token)).status).toBe(410);
    const max = await user('max@rotation.example.eu');
    expect((await say(max, 'Neu hier')).status).toBe(201);
    const kekIds = async () => (await world.env.sql<{ kek_id: string | null }>(`SELECT kek_id FROM chat.data_keys ORDER BY user_id`)).map((r) => r.kek_id);
    expect((await kekIds()).sort()).toEqual([kekId(OLD), kekId(NEW), null].sort());

    // A replica the rollout has not replaced yet (step 1's configuration) would wrap everything back: refused.
    const stale = await world.env.start(chatService, chatEnv(world.llm, { QUOTA_PROVIDER: 'none', CHAT_KEK: OLD, CHAT_KEK_UNWRAP_ONLY: NEW }));
    await expect(chatService.commands!['rewrap-data-keys'](stale.app, [])).rejects.toThrow(`this process runs with an older CHAT_KEK (id ${kekId(OLD)})`);
    await world.env.stop(stale);

    const report = await chatService.commands!['rewrap-data-keys'](chat.app, []);
    expect(report).toMatch(
      new RegExp(`^re-wrapped 2 data keys under CHAT_KEK \\(id ${kekId(NEW)}\\); every data key is under it now\\. 1 erasure marks were keyed by an earlier CHAT_KEK: keep CHAT_KEK_UNWRAP_ONLY until 20\\d\\d-`),
    );
    // The mark's date: 100 days after the erasure, as identity has not deleted the account in this test.
    const until = new Date(report.match(/until (\S+),/)![1]);
    expect(Math.abs(until.getTime() - (Date.now() + 100 * 86_400_000))).toBeLessThan(60_000);
    expect(await kekIds()).toEqual([kekId(NEW), kekId(NEW), kekId(NEW)]);
    await expect(chatService.commands!['rewrap-data-keys'](chat.app, [])).resolves.toMatch(/^re-wrapped 0 data keys/);

    // The old key still keys a live erasure mark: chat does not start without it, or ines would be served again.
    await world.env.stop(chat);
    await expect(world.env.start(chatService, chatEnv(world.llm, { QUOTA_PROVIDER: 'none', CHAT_KEK: NEW }))).rejects.toThrow(
      new RegExp(`^Erasure marks kept until 20\\S+ were keyed by a KEK chat was not given \\(id ${kekId(OLD)}\\)`),
    );
    // Once the marks are gone, the old key may go too: everything opens without it.
    await world.env.sql(`DELETE FROM chat.erased_subjects`);
    await startChat({ CHAT_KEK: NEW, CHAT_KEK_UNWRAP_ONLY: OLD });
    await expect(chatService.commands!['rewrap-data-keys'](chat.app, [])).resolves.toBe(
      `re-wrapped 0 data keys under CHAT_KEK (id ${kekId(NEW)}); every data key is under it now, and no erasure mark needs an earlier key: CHAT_KEK_UNWRAP_ONLY may be removed`,
    );
    await restartChat({ CHAT_KEK: NEW });
    expect(await contents(lea)).toEqual(['Geheimnis vor dem Wechsel', 'Echo: Geheimnis vor dem Wechsel', 'Und danach', 'Echo: Und danach']);
    expect(await contents(ola)).toEqual(['Von früher', 'Echo: Von früher']);
    expect(await contents(max)).toEqual(['Neu hier', 'Echo: Neu hier']);
  });

  it('refuses to start with only the earlier key once keys are re-wrapped, and a CHAT_KEK_UNWRAP_ONLY without a CHAT_KEK', async () => {
    await world.env.stop(chat);
    await expect(world.env.start(chatService, chatEnv(world.llm, { QUOTA_PROVIDER: 'none', CHAT_KEK: OLD }))).rejects.toThrow(`Data keys are wrapped under a KEK chat was not given (id ${kekId(NEW)})`);
    await expect(world.env.start(chatService, { ...chatEnv(world.llm, { QUOTA_PROVIDER: 'none', CHAT_KEK_UNWRAP_ONLY: OLD }), CHAT_KEK: '' })).rejects.toThrow(/CHAT_KEK_UNWRAP_ONLY.*needs CHAT_KEK/);
    await expect(world.env.start(chatService, chatEnv(world.llm, { QUOTA_PROVIDER: 'none', CHAT_KEK: NEW, CHAT_KEK_UNWRAP_ONLY: `${OLD},kein-schlüssel` }))).rejects.toThrow(/CHAT_KEK_UNWRAP_ONLY/);
    await startChat({ CHAT_KEK: NEW, CHAT_KEK_UNWRAP_ONLY: OLD });
  });
});
