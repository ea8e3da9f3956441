import { BillingEvents, CONTROLLER, IdentityEvents, PrivacyEvents, type Contact, type EventEnvelope } from '@ally/contracts';
import type { z } from 'zod';

export interface MailSpec {
  template: string;
  to: string;
  locale: 'de' | 'en';
  userId: string | null;
  /** The organisation the mail is about (an invitation to it, its billing); none for the account's own mail. */
  orgId?: string;
  /** Values the template uses; links are built from PUBLIC_BASE_URL by the renderer. */
  variables: Record<string, unknown>;
  /** Sent even to a suppressed address because the user asked for it or the law requires it. */
  required?: boolean;
  /**
   * Never held back by the per-address cap: what the law requires us to tell a subject, the compliance team's
   * escalations, and the warning of a sign-in from a new device. Dropping one would lose it; the first two nobody
   * can trigger at will, and the warning is what a flood of other mails must not hide.
   */
  uncapped?: boolean;
}

/** The event's data, checked against its contract; a malformed event fails here, not in a template. */
const dataOf = <T extends keyof typeof IdentityEvents>(type: T, e: EventEnvelope): z.infer<(typeof IdentityEvents)[T]> =>
  IdentityEvents[type].parse(e.data) as z.infer<(typeof IdentityEvents)[T]>;

/** What an entry may ask while deciding whom to mail. */
export interface MailContext {
  /**
   * The owners of an organisation, with its name (a mail to them says which workspace), or the
   * user of `private:<id>` (asked of identity).
   */
  contacts(workspace: string): Promise<{ contacts: Contact[]; organisation?: string }>;
  /** Where mail for the compliance team goes (COMPLIANCE_EMAIL), if configured. */
  complianceEmail?: string;
}

type Entry = (event: EventEnvelope, ctx: MailContext) => MailSpec | null | Promise<MailSpec[]>;

/** One mail per owner of a billing workspace, each tied to its owner (none once they are erased). */
async function toOwners(ctx: MailContext, workspace: string, template: string, variables: Record<string, unknown>): Promise<MailSpec[]> {
  const { contacts: owners, organisation } = await ctx.contacts(workspace);
  const orgId = workspace.startsWith('private:') ? undefined : workspace;
  // Which workspace: an owner may pay for their private one and an organisation's (none named: the private one).
  return owners.map((o) => ({ template, to: o.email, locale: o.locale, userId: o.userId, orgId, variables: { firstName: o.firstName, organisation, ...variables } }));
}

const billingData = <T extends keyof typeof BillingEvents>(type: T, e: EventEnvelope): z.infer<(typeof BillingEvents)[T]> =>
  BillingEvents[type].parse(e.data) as z.infer<(typeof BillingEvents)[T]>;

/** An address as a mail to someone else may show it: its first letter and its domain (`e***@example.eu`). */
export function maskedAddress(email: string): string {
  const at = email.lastIndexOf('@');
  return at > 0 ? `${email[0]}***${email.slice(at)}` : '***';
}

/**
 * Event type → mail. Adding a mail is one entry here plus its templates in
 * `templates/<template>/`. An entry may answer null: that event needs no mail.
 */
export const MAIL_CATALOG: Record<string, Entry> = {
  'identity.user.registered': (e) => {
    const d = dataOf('identity.user.registered', e);
    return { template: 'verify-email', to: d.email, locale: d.locale, userId: d.userId, required: true, variables: { firstName: d.firstName, token: d.verificationToken, validFor: d.validForSeconds } };
  },
  'identity.user.verified': (e) => {
    const d = dataOf('identity.user.verified', e);
    // restrictToEu is absent from events written before it was added: the mail then says nothing about the setting.
    return { template: 'welcome', to: d.email, locale: d.locale, userId: d.userId, variables: { firstName: d.firstName, restrictToEu: d.restrictToEu } };
  },
  'identity.user.email-change-requested': (e) => {
    const d = dataOf('identity.user.email-change-requested', e);
    // To the new address, which only this link can prove: the account's mail, sent whatever it restricted.
    return { template: 'email-change', to: d.newEmail, locale: d.locale, userId: d.userId, required: true, variables: { firstName: d.firstName, token: d.token, validFor: d.validForSeconds } };
  },
  'identity.user.email-changed': (e) => {
    const d = dataOf('identity.user.email-changed', e);
    // To the address before, so a change its owner did not make is seen (never held back, as the new sign-in warning).
    return { template: 'email-changed', to: d.previousEmail, locale: d.locale, userId: d.userId, required: true, uncapped: true, variables: { firstName: d.firstName, newEmail: maskedAddress(d.newEmail), contactEmail: CONTROLLER.email } };
  },
  'identity.password.reset-requested': (e) => {
    const d = dataOf('identity.password.reset-requested', e);
    return { template: 'password-reset', to: d.email, locale: d.locale, userId: d.userId, required: true, variables: { firstName: d.firstName, token: d.resetToken, validFor: d.validForSeconds } };
  },
  'identity.invitation.created': (e) => {
    const d = dataOf('identity.invitation.created', e);
    // To an address with an account: a mail to its owner, whose restriction or erasure it obeys.
    return { template: 'invitation', to: d.email, locale: d.locale, userId: d.inviteeUserId ?? null, orgId: d.orgId, variables: { orgName: d.orgName, invitedBy: d.invitedBy, role: d.role, token: d.token, validFor: d.validForSeconds } };
  },
  'identity.user.signed-in': (e) => {
    const d = dataOf('identity.user.signed-in', e);
    if (!d.newDevice) return null;
    // Never held back by the cap: anyone may fill an address's hour with password-reset requests, and the warning
    // that someone signed in would then be the mail that did not come.
    return { template: 'new-sign-in', to: d.email, locale: d.locale, userId: d.userId, required: true, uncapped: true, variables: { firstName: d.firstName, ip: d.ip, at: e.occurredAt } };
  },
  'identity.user.settings-changed': (e) => {
    const d = dataOf('identity.user.settings-changed', e);
    return { template: 'settings-changed', to: d.email, locale: d.locale, userId: d.userId, required: true, variables: { firstName: d.firstName, restrictToEu: d.restrictToEu } };
  },
  'privacy.export.ready': async (e, ctx) => {
    const d = PrivacyEvents['privacy.export.ready'].parse(e.data);
    // A scoped export has no account section to take the address from: identity knows it.
    const [to] = d.email ? [{ email: d.email, firstName: d.firstName ?? '', locale: d.locale }] : (await ctx.contacts(`private:${d.userId}`)).contacts;
    if (!to) return [];
    return [
      {
        template: 'export-ready',
        to: to.email,
        locale: to.locale,
        userId: d.userId,
        required: true,
        uncapped: true,
        variables: { firstName: to.firstName, downloadPath: d.downloadPath, downloadUntil: d.downloadUntil },
      },
    ];
  },
  /** Required by law: the outcome and its reasons (Art. 12(4) GDPR), and a lift before it takes effect (Art. 18(3)). */
  'privacy.request.decided': async (e, ctx) => {
    const d = PrivacyEvents['privacy.request.decided'].parse(e.data);
    const [to] = (await ctx.contacts(`private:${d.userId}`)).contacts;
    if (!to) return [];
    return [
      {
        template: 'request-decided',
        to: to.email,
        locale: to.locale,
        userId: d.userId,
        required: true,
        uncapped: true,
        variables: { firstName: to.firstName, decision: d.decision, reason: d.reason, takesEffectAt: d.takesEffectAt, contactEmail: CONTROLLER.email, supervisoryAuthority: CONTROLLER.supervisoryAuthority },
      },
    ];
  },
  /** Required by law: the action taken on their request (Art. 12(3) GDPR). Scope `all` never comes here (notify's erasure step says goodbye). */
  'privacy.erasure.completed': async (e, ctx) => {
    const d = PrivacyEvents['privacy.erasure.completed'].parse(e.data);
    const [to] = (await ctx.contacts(`private:${d.userId}`)).contacts;
    if (!to) return [];
    // An organisation's erasure names it (if it still exists: a dissolved one is named by nothing but the date).
    const organisation = d.scope === 'private' ? undefined : (await ctx.contacts(d.scope)).organisation;
    return [
      {
        template: 'erasure-completed',
        to: to.email,
        locale: to.locale,
        userId: d.userId,
        required: true,
        uncapped: true,
        variables: { firstName: to.firstName, private: d.scope === 'private', organisation, completedAt: d.completedAt, requestId: d.requestId, contactEmail: CONTROLLER.email },
      },
    ];
  },
  'privacy.request.escalated': (e, ctx) => {
    const d = PrivacyEvents['privacy.request.escalated'].parse(e.data);
    if (!ctx.complianceEmail) return null;
    return { template: 'request-escalated', to: ctx.complianceEmail, locale: 'de', userId: null, required: true, uncapped: true, variables: { ...d } };
  },
  'billing.payment.failed': (e, ctx) => toOwners(ctx, billingData('billing.payment.failed', e).workspace, 'payment-failed', {}),
  'billing.subscription.changed': (e, ctx) => {
    const d = billingData('billing.subscription.changed', e);
    return toOwners(ctx, d.workspace, 'subscription-changed', {
      plan: d.plan,
      status: d.status,
      seats: d.seats,
      // Once it has ended, "it is cancelled and ends on…" is no news.
      cancelAtPeriodEnd: (d.cancelAtPeriodEnd ?? false) && d.status !== 'canceled',
      currentPeriodEnd: d.currentPeriodEnd ?? null,
    });
  },
  'billing.quota.threshold-reached': (e, ctx) => {
    const d = billingData('billing.quota.threshold-reached', e);
    return toOwners(ctx, d.workspace, 'quota-threshold', { percent: d.percent, period: d.period });
  },
};

export const MAIL_EVENT_TYPES = Object.keys(MAIL_CATALOG);
