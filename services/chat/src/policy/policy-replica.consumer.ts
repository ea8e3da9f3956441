import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { IdentityEvents, PrivacyEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';

type Handler = (em: EntityManager, data: any) => Promise<unknown>;

/** identity's events → chat's replica of what routing needs: restrictToEu, memberships, organisation policy. */
const APPLY: Record<string, Handler> = {
  'identity.user.registered': (em, d) =>
    em.query(`INSERT INTO user_settings (user_id, restrict_to_eu) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING`, [d.userId, d.restrictToEu]),
  'identity.user.settings-changed': (em, d) =>
    em.query(
      `INSERT INTO user_settings (user_id, restrict_to_eu, updated_at) VALUES ($1, $2, now())
       ON CONFLICT (user_id) DO UPDATE SET restrict_to_eu = EXCLUDED.restrict_to_eu, updated_at = now()`,
      [d.userId, d.restrictToEu],
    ),
  'identity.user.deleted': async (em, d) => {
    await em.query(`DELETE FROM user_settings WHERE user_id = $1`, [d.userId]);
    await em.query(`DELETE FROM memberships WHERE user_id = $1`, [d.userId]);
  },
  'identity.organization.created': (em, d) => em.query(`INSERT INTO org_policies (org_id) VALUES ($1) ON CONFLICT (org_id) DO NOTHING`, [d.orgId]),
  'identity.organization.policy-changed': (em, d) =>
    em.query(
      `INSERT INTO org_policies (org_id, eu_only, allowed_models, chat_retention_days, blocked_terms, updated_at) VALUES ($1, $2, $3, $4, $5, now())
       ON CONFLICT (org_id) DO UPDATE SET eu_only = EXCLUDED.eu_only, allowed_models = EXCLUDED.allowed_models,
         chat_retention_days = EXCLUDED.chat_retention_days, blocked_terms = EXCLUDED.blocked_terms, updated_at = now()`,
      [d.orgId, d.euOnly, d.allowedModels, d.chatRetentionDays, d.blockedTerms ?? []],
    ),
  'identity.member.added': (em, d) =>
    em.query(`INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role`, [d.orgId, d.userId, d.role]),
  'identity.member.removed': (em, d) => em.query(`DELETE FROM memberships WHERE org_id = $1 AND user_id = $2`, [d.orgId, d.userId]),
  // Art. 18: the subject's data may only be stored; chat stops processing it in that scope.
  'privacy.subject.restricted': (em, d) =>
    em.query(`INSERT INTO restrictions (user_id, scope, request_id) VALUES ($1, $2, $3) ON CONFLICT (request_id) DO NOTHING`, [d.userId, d.scope, d.requestId]),
  // Only the lifted request's: another restriction of the same scope still stands.
  'privacy.subject.restriction-lifted': (em, d) => em.query(`DELETE FROM restrictions WHERE request_id = $1`, [d.requestId]),
};

const SCHEMAS: Record<string, { parse(v: unknown): unknown }> = { ...IdentityEvents, ...PrivacyEvents };

@Injectable()
export class PolicyReplicaConsumer {
  constructor(consumers: EventConsumers) {
    consumers.register({
      durable: 'chat-policy',
      types: Object.keys(APPLY),
      handler: async (em, event: EventEnvelope) => {
        await APPLY[event.type](em, SCHEMAS[event.type].parse(event.data));
      },
    });
  }
}
