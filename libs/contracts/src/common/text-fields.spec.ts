import { describe, expect, it } from '@jest/globals';
import { createApiKeyInput, createOrgInput } from '../identity/identity.schemas.js';
import { messageBody } from '../chat/chat.schemas.js';

/** Names shown to others must read as what they are. */
describe('display names', () => {
  it.each(['Müller & Söhne GmbH', 'شركة الأمل', '株式会社テスト', 'A1', 'Café ☕ Team'])('takes %s', (name) => {
    expect(createOrgInput.safeParse({ name }).success).toBe(true);
  });

  it.each([
    ['\u200B\u200B', 'invisible'],
    ['ab\u202Ecd', 'text-direction'],
    ['Bank\u2066 AG\u2069', 'text-direction'],
    ['Al\uFEFFly', 'invisible'],
    ['---', 'letter or digit'],
  ])('refuses %j', (name, why) => {
    const parsed = createOrgInput.safeParse({ name });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues.map((i) => i.message).join(' ')).toContain(why);
    expect(createApiKeyInput.safeParse({ name, workspace: 'private' }).success).toBe(false);
  });
});

/** A message must say something visible: one of invisible characters alone would go to the model and be billed. */
describe('message text', () => {
  it.each(['Hallo', ' ?', 'a\u200Bb', '\u3164x', '😀', '한'])('takes %j', (content) => {
    expect(messageBody.safeParse({ content }).success).toBe(true);
  });

  it.each(['', '  \n\t', '\u200B', '\u00AD\u00AD', '\u2060', '\uFEFF', '\u3164', '\u115F\u1160', '\uFFA0', '\u180E', '\u200B \u3164\n\u00AD', '\u0007'])(
    'refuses %j',
    (content) => {
      const parsed = messageBody.safeParse({ content });
      expect(parsed.success).toBe(false);
      expect(parsed.error!.issues.map((i) => i.message)).toContain('must not be empty');
    },
  );
});
