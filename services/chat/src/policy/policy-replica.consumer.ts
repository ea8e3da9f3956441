import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { IdentityEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';
import { PolicyService } from './policy.service.js';
import { addMembership, orgPolicyDiffers, putOrgPolicy, putUserSettings, removeMembership, userSettingsDiffer } from './replica-rows.js';

/** `at`: when it happened at identity (the envelope's occurredAt): a row only ever moves forward in time. */
type Handler = (em: EntityManager, data: any, at: string) => Promise<unknown>;

/**
 * identity's events → chat's replica of what routing needs: restrictToEu, memberships, organisation policy.
 * A setting's event older than the row and saying otherwise is not simply dropped: the row's time may be
 * chat's own clock (a read from identity) or a read that raced the change's commit, so identity is asked
 * what holds now (a failure leaves the event to be delivered again).
 */
const handlers = (policies: PolicyService): Record<string, Handler> => ({
  // Only the setting: identity's registration and settings events carry an address, a name and a token for notify's mails.
  'identity.user.residency-set': async (em, d, at) => {
    // An event arriving after the subject's erasure brings nothing of them back.
    if (await policies.isErased(em, d.userId)) return;
    if (!(await putUserSettings(em, d.userId, d.restrictToEu, at, 'update')) && (await userSettingsDiffer(em, d.userId, d.restrictToEu))) await policies.reconcileUser(em, d.userId);
  },
  'identity.user.deleted': async (em, d) => {
    // The erasure mark (chat's step came before) now counts down to its purge: the account is gone.
    await policies.accountDeleted(em, d.userId);
    await em.query(`DELETE FROM user_settings WHERE user_id = $1`, [d.userId]);
    await em.query(`DELETE FROM memberships WHERE user_id = $1`, [d.userId]);
    await em.query(`DELETE FROM membership_removals WHERE user_id = $1`, [d.userId]);
  },
  'identity.organization.created': (em, d, at) => em.query(`INSERT INTO org_policies (org_id, updated_at) VALUES ($1, $2) ON CONFLICT (org_id) DO NOTHING`, [d.orgId, at]),
  // Its last member went: its assistants (written by it and its members, kept as text) and its policy have no one
  // left to keep them for. Former members' conversations there go by their removals, as before.
  'identity.organization.dissolved': async (em, d) => {
    await em.query(`DELETE FROM assistants WHERE workspace = $1`, [d.orgId]);
    await em.query(`DELETE FROM org_policies WHERE org_id = $1`, [d.orgId]);
  },
  'identity.organization.policy-changed': async (em, d, at) => {
    if (!(await putOrgPolicy(em, d, at, 'update')) && (await orgPolicyDiffers(em, d))) await policies.reconcileOrg(em, d.orgId);
  },
  'identity.member.added': async (em, d, at) => {
    if (!(await policies.isErased(em, d.userId))) await addMembership(em, d.orgId, d.userId, d.role, at, 'update');
  },
  // A row dated after the removal is a re-invitation, or chat's own read of identity dated by a clock running ahead: identity says which.
  'identity.member.removed': async (em, d, at) => {
    if (await removeMembership(em, d.orgId, d.userId, at)) await policies.reconcileMembership(em, d.orgId, d.userId);
  },
});

const SCHEMAS: Record<string, { parse(v: unknown): unknown }> = IdentityEvents;

@Injectable()
export class PolicyReplicaConsumer {
  constructor(consumers: EventConsumers, policies: PolicyService) {
    const apply = handlers(policies);
    consumers.register({
      durable: 'chat-policy',
      types: Object.keys(apply),
      handler: async (em, event: EventEnvelope) => {
        await apply[event.type](em, SCHEMAS[event.type].parse(event.data), event.occurredAt);
      },
    });
  }
}
