import { describe, expect, it } from '@jest/globals';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CONTROLLER } from '@ally/contracts';
import type { NotifyConfig } from '../config.js';
import { MailRenderer } from './mail-renderer.js';

const renderer = new MailRenderer({ PUBLIC_BASE_URL: 'https://ally.example.eu/' } as NotifyConfig);
const TEMPLATES = fileURLToPath(new URL('../../templates/', import.meta.url));

describe('mail templates', () => {
  it('claim no more than holds: models outside the EU when the user allows them, so not "all data stays in the EU"', () => {
    for (const locale of ['de', 'en'] as const) {
      for (const mail of [renderer.render('welcome', locale, { firstName: 'Rita' }), renderer.render('settings-changed', locale, { firstName: 'Rita', restrictToEu: false })]) {
        expect(mail.html).not.toMatch(/stored and processed in the EU|gespeichert und verarbeitet|stays in the EU|bleiben in der EU/);
      }
    }
    expect(renderer.render('welcome', 'de', { firstName: 'Rita' }).html).toContain('KI-Modelle außerhalb der EU nur, wenn Sie es erlauben');
  });

  it('tell the outcome of a restriction or objection with its reason, where to object, and a lift’s date, in both languages', () => {
    const base = { firstName: 'Rita', reason: 'Ihre Angaben sind geprüft.', takesEffectAt: '2026-12-09T10:30:00.000Z', contactEmail: CONTROLLER.email, supervisoryAuthority: CONTROLLER.supervisoryAuthority };
    const subjects = (decision: string) => (['de', 'en'] as const).map((l) => renderer.render('request-decided', l, { ...base, decision }).subject);
    expect(subjects('lift')).toEqual(['Ihre Einschränkung der Verarbeitung wird aufgehoben', 'The restriction of processing you asked for will be lifted']);
    expect(subjects('uphold')).toEqual(['Ihrem Widerspruch wurde stattgegeben', 'Your objection was upheld']);
    expect(subjects('reject')).toEqual(['Entscheidung über Ihren Widerspruch', 'Decision on your objection']);

    const lift = renderer.render('request-decided', 'de', { ...base, decision: 'lift' });
    expect(lift.text).toContain('am 9. Dezember 2026, 10:30 UTC auf');
    expect(lift.text).toContain('Begründung: Ihre Angaben sind geprüft.');
    expect(lift.text).toContain(CONTROLLER.email);
    expect(lift.text).toContain('Art. 77 DSGVO');
    expect(lift.text).not.toMatch(/\n{3,}/);
    const reject = renderer.render('request-decided', 'en', { ...base, decision: 'reject', reason: '<b>fraud</b> prevention' });
    expect(reject.text).toContain('compelling legitimate grounds');
    expect(reject.text).not.toContain('lift');
    // Compliance's words are text, not markup, in the HTML part.
    expect(reject.html).toContain('&lt;b&gt;fraud&lt;/b&gt; prevention');
  });

  it('exist in German and English for every mail', () => {
    for (const template of ['verify-email', 'welcome', 'password-reset', 'invitation', 'new-sign-in', 'settings-changed', 'export-ready', 'request-decided', 'payment-failed', 'subscription-changed', 'quota-threshold']) {
      for (const file of ['de.txt.hbs', 'de.html.hbs', 'en.txt.hbs', 'en.html.hbs']) expect(`${template}/${file}: ${existsSync(`${TEMPLATES}${template}/${file}`)}`).toBe(`${template}/${file}: true`);
    }
  });
});
