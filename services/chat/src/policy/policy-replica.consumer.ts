import { Injectable } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { IdentityEvents, PrivacyEvents, type EventEnvelope } from '@ally/contracts';
import { EventConsumers } from '@ally/platform';

/** `at`: when it happened at identity (the envelope's occurredAt): a row only ever moves forward in time. */
type Handler = (em: EntityManager, data: any, at: string) => Promise<unknown>;

/** identity's events → chat's replica of what routing needs: restrictToEu, memberships, organisation policy. */
const APPLY: Record<string, Handler> = {
  'identity.user.registered': (em, d, at) => putUserSettings(em, d.userId, d.restrictToEu, at, 'keep'),
  'identity.user.settings-changed': (em, d, at) => putUserSettings(em, d.userId, d.restrictToEu, at, 'update'),
  'identity.user.deleted': async (em, d) => {
    await em.query(`DELETE FROM user_settings WHERE user_id = $1`, [d.userId]);
    await em.query(`DELETE FROM memberships WHERE user_id = $1`, [d.userId]);
    await em.query(`DELETE FROM membership_removals WHERE user_id = $1`, [d.userId]);
  },
  'identity.organization.created': (em, d, at) => em.query(`INSERT INTO org_policies (org_id, updated_at) VALUES ($1, $2) ON CONFLICT (org_id) DO NOTHING`, [d.orgId, at]),
  'identity.organization.policy-changed': (em, d, at) => putOrgPolicy(em, d, at, 'update'),
  'identity.member.added': (em, d, at) => addMembership(em, d.orgId, d.userId, d.role, at, 'update'),
  'identity.member.removed': async (em, d, at) => {
    await em.query(`DELETE FROM memberships WHERE org_id = $1 AND user_id = $2 AND updated_at <= $3`, [d.orgId, d.userId, at]);
    await em.query(
      `INSERT INTO membership_removals (org_id, user_id, removed_at) VALUES ($1, $2, $3)
       ON CONFLICT (org_id, user_id) DO UPDATE SET removed_at = GREATEST(membership_removals.removed_at, EXCLUDED.removed_at)`,
      [d.orgId, d.userId, at],
    );
  },
  // Art. 18: the subject's data may only be stored; chat stops processing it in that scope.
  'privacy.subject.restricted': (em, d) =>
    em.query(`INSERT INTO restrictions (user_id, scope, request_id) VALUES ($1, $2, $3) ON CONFLICT (request_id) DO NOTHING`, [d.userId, d.scope, d.requestId]),
  // Only the lifted request's: another restriction of the same scope still stands.
  'privacy.subject.restriction-lifted': (em, d) => em.query(`DELETE FROM restrictions WHERE request_id = $1`, [d.requestId]),
};

/**
 * How a replica row as of `at` meets the one already there: `update` (an event) replaces an older one;
 * `keep` (what chat fetched for a user or organisation it had not seen) only fills a gap; `current`
 * (identity's answer right after a change, read after it committed) replaces whatever is there, keeping
 * the later time, so an event of a clock running ahead that arrives afterwards cannot undo it.
 */
type OnConflict = 'update' | 'keep' | 'current';

/** The ON CONFLICT action for a replica row of `table` whose `columns` come from the row as of `updated_at`. */
function onConflictDo(table: string, columns: string[], onConflict: OnConflict): string {
  if (onConflict === 'keep') return 'NOTHING';
  const set = columns.map((c) => `${c} = EXCLUDED.${c}`).join(', ');
  return onConflict === 'current'
    ? `UPDATE SET ${set}, updated_at = GREATEST(${table}.updated_at, EXCLUDED.updated_at)`
    : `UPDATE SET ${set}, updated_at = EXCLUDED.updated_at WHERE ${table}.updated_at < EXCLUDED.updated_at`;
}

export function putUserSettings(em: Pick<EntityManager, 'query'>, userId: string, restrictToEu: boolean, at: string, onConflict: OnConflict): Promise<unknown> {
  return em.query(
    `INSERT INTO user_settings (user_id, restrict_to_eu, updated_at) VALUES ($1, $2, $3)
     ON CONFLICT (user_id) DO ${onConflictDo('user_settings', ['restrict_to_eu'], onConflict)}`,
    [userId, restrictToEu, at],
  );
}

export interface OrgPolicyRow {
  orgId: string;
  euOnly: boolean;
  allowedModels: string[] | null;
  chatRetentionDays: number | null;
  blockedTerms?: string[];
}

export function putOrgPolicy(em: Pick<EntityManager, 'query'>, p: OrgPolicyRow, at: string, onConflict: OnConflict): Promise<unknown> {
  return em.query(
    `INSERT INTO org_policies (org_id, eu_only, allowed_models, chat_retention_days, blocked_terms, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (org_id) DO ${onConflictDo('org_policies', ['eu_only', 'allowed_models', 'chat_retention_days', 'blocked_terms'], onConflict)}`,
    [p.orgId, p.euOnly, p.allowedModels, p.chatRetentionDays, p.blockedTerms ?? [], at],
  );
}

/**
 * A membership as of `at`, unless it was removed at or after that time (an update: the newer role wins).
 */
export function addMembership(em: Pick<EntityManager, 'query'>, orgId: string, userId: string, role: string, at: string, onConflict: OnConflict): Promise<unknown> {
  return em.query(
    `INSERT INTO memberships (org_id, user_id, role, updated_at)
     SELECT $1::uuid, $2::uuid, $3::text, $4::timestamptz WHERE NOT EXISTS (SELECT 1 FROM membership_removals WHERE org_id = $1::uuid AND user_id = $2::uuid AND removed_at >= $4::timestamptz)
     ON CONFLICT (org_id, user_id) DO ${onConflictDo('memberships', ['role'], onConflict)}`,
    [orgId, userId, role, at],
  );
}

const SCHEMAS: Record<string, { parse(v: unknown): unknown }> = { ...IdentityEvents, ...PrivacyEvents };

@Injectable()
export class PolicyReplicaConsumer {
  constructor(consumers: EventConsumers) {
    consumers.register({
      durable: 'chat-policy',
      types: Object.keys(APPLY),
      handler: async (em, event: EventEnvelope) => {
        await APPLY[event.type](em, SCHEMAS[event.type].parse(event.data), event.occurredAt);
      },
    });
  }
}
