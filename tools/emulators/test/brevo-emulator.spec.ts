import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { BrevoClient } from '@getbrevo/brevo';
import { startBrevoEmulator, type BrevoEmulator } from '@ally/emulators';

// The official SDK against the emulator, sending as notify does.
describe('Brevo emulator: idempotency keys', () => {
  let brevo: BrevoEmulator;
  let shortLived: BrevoEmulator;
  let firstAnswer: BrevoEmulator;

  beforeAll(async () => {
    brevo = await startBrevoEmulator();
    shortLived = await startBrevoEmulator({ idempotencyTtlMs: 100 });
    firstAnswer = await startBrevoEmulator({ repeatedKey: 'first-answer' });
  });

  afterAll(async () => {
    await brevo?.close();
    await shortLived?.close();
    await firstAnswer?.close();
  });

  beforeEach(() => {
    brevo.clear();
    shortLived.clear();
    firstAnswer.clear();
  });

  const client = (emulator: BrevoEmulator) => new BrevoClient({ apiKey: 'emulator', baseUrl: emulator.apiUrl, maxRetries: 0 });
  const send = (emulator: BrevoEmulator, to: string, idempotencyKey?: string) =>
    client(emulator).transactionalEmails.sendTransacEmail({
      sender: { email: 'no-reply@ally.eu' },
      to: [{ email: to }],
      subject: 'Hello',
      textContent: 'Hello',
      ...(idempotencyKey ? { headers: { idempotencyKey } } : {}),
    });

  it("answers a repeated key with Brevo's 400 duplicate_parameter and mails once; other keys and sends without one each mail", async () => {
    const key = randomUUID();
    await send(brevo, 'a@example.eu', key);
    await expect(send(brevo, 'a@example.eu', key)).rejects.toMatchObject({ statusCode: 400, body: { code: 'duplicate_parameter' } });
    expect(brevo.mails('a@example.eu')).toHaveLength(1);
    expect(brevo.mails('a@example.eu')[0].headers).toEqual({ idempotencyKey: key });

    await send(brevo, 'a@example.eu', randomUUID());
    await send(brevo, 'a@example.eu');
    await send(brevo, 'a@example.eu');
    expect(brevo.mails('a@example.eu')).toHaveLength(4);
  });

  it("lists a mail's links without the bracket or full stop of the sentence around them", async () => {
    await client(brevo).transactionalEmails.sendTransacEmail({
      sender: { email: 'no-reply@ally.eu' },
      to: [{ email: 'links@example.eu' }],
      subject: 'Links',
      textContent: 'Reset your password (http://localhost:3000/forgot-password) and see http://localhost:3000/verify-email?token=a.b.',
    });
    expect(brevo.mails('links@example.eu')[0].links).toEqual(['http://localhost:3000/forgot-password', 'http://localhost:3000/verify-email?token=a.b']);
  });

  it('answers a repeat that arrives while the first send is still in flight after it; with first-answer, with its message id', async () => {
    const key = randomUUID();
    firstAnswer.slowNext({ delayMs: 500 });
    const first = send(firstAnswer, 'slow@example.eu', key);
    await new Promise((r) => setTimeout(r, 100));
    const [a, b] = await Promise.all([first, send(firstAnswer, 'slow@example.eu', key)]);
    expect(b.messageId).toBe(a.messageId);
    expect(firstAnswer.mails('slow@example.eu')).toHaveLength(1);
  });

  it('sends a repeat of a refused send (the key was not used up)', async () => {
    const key = randomUUID();
    brevo.failNext({ status: 503, times: 1 });
    await expect(send(brevo, 'retry@example.eu', key)).rejects.toMatchObject({ statusCode: 503 });
    await send(brevo, 'retry@example.eu', key);
    expect(brevo.mails('retry@example.eu')).toHaveLength(1);
  });

  it('forgets a key after its window', async () => {
    const key = randomUUID();
    const first = await send(shortLived, 'late@example.eu', key);
    await new Promise((r) => setTimeout(r, 150));
    const later = await send(shortLived, 'late@example.eu', key);
    expect(later.messageId).not.toBe(first.messageId);
    expect(shortLived.mails('late@example.eu')).toHaveLength(2);
  });
});
