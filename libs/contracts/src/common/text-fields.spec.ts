import { describe, expect, it } from '@jest/globals';
import { createApiKeyInput, createOrgInput } from '../identity/identity.schemas.js';

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
