import { describe, expect, it } from '@jest/globals';
import { orgNameSchema, personNameSchema } from './identity.schemas.js';

/** Names travel into mails to other addresses (invitations): none may be a link there in Ally's name. */
describe('names that go into mails', () => {
  it.each(['Konto gesperrt: https://ally-login.evil.example/reset', 'Team www.evil.example', 'Support evil.example/login', 'mailto:help@evil.example', 'Login at evil.example:8443'])(
    'an organisation named %j is refused as a web address',
    (name) => {
      const result = orgNameSchema.safeParse(name);
      expect(result.success).toBe(false);
      expect(result.error?.issues[0].message).toBe('must be a name, not a web address (no http://, www. or /path)');
    },
  );

  it.each(['Booking.com B.V.', 'Müller & Söhne GmbH', 'A.B.C. Consulting', 'Web 2.0 Agentur'])('an organisation named %j is a name', (name) => {
    expect(orgNameSchema.safeParse(name).success).toBe(true);
  });

  it.each(['ally-login.evil.example', 'Ida evil.example'])('a person named %j is refused as a web address', (name) => {
    const result = personNameSchema.safeParse(name);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0].message).toBe('must be a name, not a web address');
  });

  it.each(['J.R.R. Tolkien', 'St. Gallen', "O'Brien", 'Dr.med. Müller', 'Anne-Marie'])('a person named %j is a name', (name) => {
    expect(personNameSchema.safeParse(name).success).toBe(true);
  });
});
