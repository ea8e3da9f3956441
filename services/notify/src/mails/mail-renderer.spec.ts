import { describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CONTROLLER, createEnvelope } from '@ally/contracts';
import type { NotifyConfig } from '../config.js';
import { MAIL_CATALOG, type MailSpec } from './mail-catalog.js';
import { MailRenderer } from './mail-renderer.js';

// As the config gives it (publicBaseUrlSchema drops a trailing slash).
const renderer = new MailRenderer({ PUBLIC_BASE_URL: 'https://ally.example.eu' } as NotifyConfig);
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

  it('tell what an erasure of one workspace did: the organisation left, its assistants kept without the name, a dissolved one said so', () => {
    const base = { firstName: 'Mia', completedAt: '2026-12-06T10:00:00.000Z', requestId: 'r-1', contactEmail: CONTROLLER.email };
    const named = renderer.render('erasure-completed', 'de', { ...base, private: false, organisation: 'Werft KG' });
    expect(named.subject).toBe('Ihre Daten bei Werft KG sind gelöscht');
    expect(named.text).toContain('Sie sind nicht mehr Mitglied der Organisation');
    expect(named.text).toContain('bleiben bei ihr, ohne Ihren Namen');
    expect(named.text).not.toContain('aufgelöst');
    const dissolved = renderer.render('erasure-completed', 'en', { ...base, private: false });
    expect(dissolved.subject).toBe('Your data in a dissolved organisation is erased');
    expect(dissolved.text).toContain('The organisation itself was dissolved with it: you were its last member.');
    expect(dissolved.text).toContain('Request r-1.');
    const own = renderer.render('erasure-completed', 'en', { ...base, private: true });
    expect(own.text).toContain('its conversations and assistants');
    expect(own.text).not.toContain('member');
    // A name with a line separator stays on the subject's one line.
    expect(renderer.render('erasure-completed', 'de', { ...base, private: false, organisation: 'Acme\u2028Bcc: x@y' }).subject).toBe('Ihre Daten bei Acme Bcc: x@y sind gelöscht');
    // The last mail names what is kept, and for how long.
    const last = renderer.render('account-erased', 'de', { firstName: 'Mia', contactEmail: CONTROLLER.email }).text;
    for (const kept of ['Rechnungen und Zahlungsbelege zehn Jahre', 'vier Jahre nach seinem Ende', 'drei Jahre lang']) expect(last).toContain(kept);
  });

  it('tell the outcome of a restriction or objection with its reason, where to object, and a lift’s date, in both languages', () => {
    const base = { firstName: 'Rita', reason: 'Ihre Angaben sind geprüft.', takesEffectAt: '2026-12-09T10:30:00.000Z', contactEmail: CONTROLLER.email, supervisoryAuthority: CONTROLLER.supervisoryAuthority };
    const subjects = (decision: string) => (['de', 'en'] as const).map((l) => renderer.render('request-decided', l, { ...base, decision }).subject);
    expect(subjects('lift')).toEqual(['Ihre Einschränkung der Verarbeitung wird aufgehoben', 'The restriction of processing you asked for will be lifted']);
    expect(subjects('uphold')).toEqual(['Ihrem Widerspruch wurde stattgegeben', 'Your objection was upheld']);
    expect(subjects('reject')).toEqual(['Entscheidung über Ihren Widerspruch', 'Decision on your objection']);

    const lift = renderer.render('request-decided', 'de', { ...base, decision: 'lift' });
    // In German time, the zone named (10:30 UTC is 11:30 in Berlin in winter).
    expect(lift.text).toContain('am 9. Dezember 2026, 11:30 MEZ auf');
    expect(renderer.render('request-decided', 'en', { ...base, decision: 'lift', takesEffectAt: '2026-07-09T10:30:00.000Z' }).text).toContain('on 9 July 2026, 12:30 CEST;');
    // A moment late on 31 December in UTC is already the new year in Germany.
    expect(renderer.render('request-decided', 'de', { ...base, decision: 'lift', takesEffectAt: '2026-12-31T23:30:00.000Z' }).text).toContain('am 1. Januar 2027, 00:30 MEZ auf');
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

  it('state the "EU models only" setting as the user has it, and nothing when the event does not say', () => {
    const welcome = (locale: 'de' | 'en', restrictToEu?: boolean) => renderer.render('welcome', locale, { firstName: 'Rita', restrictToEu }).text;
    expect(welcome('en', true)).toContain('"EU models only" setting is on');
    expect(welcome('en', false)).toContain('"EU models only" setting is off');
    expect(welcome('de', true)).toContain('„nur EU-Modelle“ ist für Ihr Konto eingeschaltet');
    expect(welcome('de', false)).toContain('„nur EU-Modelle“ ist für Ihr Konto ausgeschaltet');
    for (const locale of ['de', 'en'] as const) expect(welcome(locale)).not.toMatch(/EU models only|nur EU-Modelle/);
  });

  it('word a sign-in without an IP address in the mail’s language', async () => {
    const event = createEnvelope({
      type: 'identity.user.signed-in',
      source: 'identity',
      data: { userId: randomUUID(), method: 'sso', newDevice: true, email: 'j@example.eu', firstName: 'Jörg', locale: 'de', ip: null },
    });
    const spec = (await MAIL_CATALOG['identity.user.signed-in'](event, { contacts: async () => ({ contacts: [] }) })) as MailSpec;
    expect(renderer.render('new-sign-in', 'de', spec.variables).text).toContain('IP-Adresse (unbekannt)');
    expect(renderer.render('new-sign-in', 'en', spec.variables).text).toContain('IP address (unknown)');
    expect(renderer.render('new-sign-in', 'de', { ...spec.variables, ip: '203.0.113.7' }).text).toContain('(203.0.113.7)');
  });

  it('point only to routes and pages that exist and do what the mail says', () => {
    const bodies = (template: string, variables: Record<string, unknown>) =>
      (['de', 'en'] as const).flatMap((l) => {
        const mail = renderer.render(template, l, variables);
        return [mail.text, mail.html];
      });
    // The escalation: the admin API lists requests by status; there is no route for one request.
    const escalated = bodies('request-escalated', { requestId: 'f6c1a7a2-9b0e-4c55-8a8c-2e8d1f0b4a11', type: 'erasure', status: 'failed', dueAt: '2026-12-01', reason: 'failed' });
    for (const body of escalated) {
      expect(body).not.toContain('/v1/admin/privacy/requests/');
      expect(body).toContain('/v1/admin/privacy/requests?status=failed');
    }
    // /billing is only where Stripe's portal returns to: it opens no portal.
    for (const body of bodies('payment-failed', { firstName: 'Rita' })) expect(body).not.toContain('/billing');
    for (const body of bodies('quota-threshold', { firstName: 'Rita', percent: 100, period: '2026-11' })) expect(body).not.toContain('/billing');
    // The subscription mail says all the page would: no "Details" link to a page that shows none.
    for (const body of bodies('subscription-changed', { firstName: 'Rita', plan: 'team', status: 'active', seats: 3 })) expect(body).not.toContain('/billing');
    // A password is changed through the reset page, not the home page.
    for (const body of bodies('settings-changed', { firstName: 'Rita', restrictToEu: false })) expect(body).toContain('https://ally.example.eu/forgot-password');
  });

  it('name the quota period as a month in the mail’s language', () => {
    const quota = (locale: 'de' | 'en') => renderer.render('quota-threshold', locale, { firstName: 'Rita', percent: 80, period: '2026-11' }).text;
    expect(quota('de')).toContain('im November 2026 sind 80 %');
    expect(quota('en')).toContain('in November 2026, 80%');
    expect(renderer.render('quota-threshold', 'de', { firstName: 'Rita', percent: 80, period: '2026-03' }).text).toContain('im März 2026');
  });

  it("state a link's lifetime as identity set it, and the usual one for events that do not say", () => {
    const text = (template: string, locale: 'de' | 'en', validFor?: number) => renderer.render(template, locale, { firstName: 'Rita', orgName: 'Werft', invitedBy: 'Olaf', role: 'member', token: 't', validFor }).text;
    expect(text('password-reset', 'de', 2)).toContain('Der Link ist 2 Sekunden gültig.');
    expect(text('password-reset', 'de', 3600)).toContain('Der Link ist eine Stunde gültig.');
    expect(text('password-reset', 'en', 5400)).toContain('The link is valid for 90 minutes.');
    expect(text('password-reset', 'de')).toContain('Der Link ist eine Stunde gültig.');
    expect(text('verify-email', 'de', 86_400)).toContain('Der Link ist einen Tag gültig');
    expect(text('verify-email', 'en', 2 * 86_400)).toContain('The link is valid for 2 days');
    expect(text('invitation', 'de', 3 * 86_400)).toContain('Die Einladung ist 3 Tage gültig.');
    expect(text('invitation', 'en')).toContain('The invitation is valid for 7 days.');
  });
});
