import { IdentityEvents, type EventEnvelope } from '@ally/contracts';
import type { z } from 'zod';

export interface MailSpec {
  template: string;
  to: string;
  locale: 'de' | 'en';
  userId: string | null;
  /** Values the template uses; links are built from PUBLIC_BASE_URL by the renderer. */
  variables: Record<string, unknown>;
  /** Sent even to a suppressed address because the user asked for it or the law requires it. */
  required?: boolean;
}

/** The event's data, checked against its contract; a malformed event fails here, not in a template. */
const dataOf = <T extends keyof typeof IdentityEvents>(type: T, e: EventEnvelope): z.infer<(typeof IdentityEvents)[T]> =>
  IdentityEvents[type].parse(e.data) as z.infer<(typeof IdentityEvents)[T]>;

/**
 * Event type → mail. Adding a mail is one entry here plus its templates in
 * `templates/<template>/`. An entry may answer null: that event needs no mail.
 */
export const MAIL_CATALOG: Record<string, (event: EventEnvelope) => MailSpec | null> = {
  'identity.user.registered': (e) => {
    const d = dataOf('identity.user.registered', e);
    return { template: 'verify-email', to: d.email, locale: d.locale, userId: d.userId, required: true, variables: { firstName: d.firstName, token: d.verificationToken } };
  },
  'identity.user.verified': (e) => {
    const d = dataOf('identity.user.verified', e);
    return { template: 'welcome', to: d.email, locale: d.locale, userId: d.userId, variables: { firstName: d.firstName } };
  },
  'identity.password.reset-requested': (e) => {
    const d = dataOf('identity.password.reset-requested', e);
    return { template: 'password-reset', to: d.email, locale: d.locale, userId: d.userId, required: true, variables: { firstName: d.firstName, token: d.resetToken } };
  },
  'identity.invitation.created': (e) => {
    const d = dataOf('identity.invitation.created', e);
    return { template: 'invitation', to: d.email, locale: d.locale, userId: null, variables: { orgName: d.orgName, invitedBy: d.invitedBy, role: d.role, token: d.token } };
  },
  'identity.user.signed-in': (e) => {
    const d = dataOf('identity.user.signed-in', e);
    if (!d.newDevice) return null;
    return { template: 'new-sign-in', to: d.email, locale: d.locale, userId: d.userId, required: true, variables: { firstName: d.firstName, ip: d.ip ?? 'unknown', at: e.occurredAt } };
  },
  'identity.user.settings-changed': (e) => {
    const d = dataOf('identity.user.settings-changed', e);
    return { template: 'settings-changed', to: d.email, locale: d.locale, userId: d.userId, required: true, variables: { firstName: d.firstName, restrictToEu: d.restrictToEu } };
  },
};

export const MAIL_EVENT_TYPES = Object.keys(MAIL_CATALOG);
