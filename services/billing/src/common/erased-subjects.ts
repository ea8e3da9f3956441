import { Inject, Injectable } from '@nestjs/common';
import { createHmac } from 'node:crypto';
import type { Logger } from 'pino';
import type { EntityManager } from 'typeorm';
import { LOGGER } from '@ally/platform';
import { BILLING_CONFIG, type BillingConfig } from '../config.js';

/**
 * A stable pseudonym for a user id, keyed (HMAC-SHA256 with
 * `BILLING_PSEUDONYM_KEY`): the restricted copies stay linkable to each
 * other, and back to the person only for whoever holds both the id (an event
 * still in the stream, a backup) and the key.
 */
@Injectable()
export class Pseudonyms {
  private readonly key: string;

  constructor(@Inject(BILLING_CONFIG) config: BillingConfig, @Inject(LOGGER) logger: Logger) {
    this.key = config.BILLING_PSEUDONYM_KEY ?? 'ally-development-pseudonym-key';
    if (!config.BILLING_PSEUDONYM_KEY) logger.warn(`${config.NODE_ENV}: no BILLING_PSEUDONYM_KEY, erased subjects' pseudonyms use a development key`);
  }

  of(userId: string): string {
    return `erased-${createHmac('sha256', this.key).update(userId.toLowerCase()).digest('hex').slice(0, 16)}`;
  }
}

/** Whether a workspace key is an erased subject's pseudonym (`Pseudonyms.of`). */
export const isPseudonym = (workspace: string) => /^erased-[0-9a-f]{16}$/.test(workspace);

/**
 * The rows of workspaces in use, where customers and subscriptions have one
 * per workspace (their unique indexes' predicate, named in ON CONFLICT); a
 * pseudonym may hold several, one per erasure.
 */
export const IN_USE = `workspace NOT LIKE 'erased-%'`;

/**
 * A subject whose whole account billing erased: from then until identity
 * deletes the account (other services' steps may still run), nothing new is
 * set up for them (a Checkout would leave a customer behind the erasure).
 * Kept under the pseudonym only.
 */
export async function markErased(em: Pick<EntityManager, 'query'>, alias: string): Promise<void> {
  await em.query(`INSERT INTO erased_subjects (alias) VALUES ($1) ON CONFLICT DO NOTHING`, [alias]);
}

export async function isErased(em: Pick<EntityManager, 'query'>, alias: string): Promise<boolean> {
  return (await em.query(`SELECT 1 FROM erased_subjects WHERE alias = $1`, [alias])).length > 0;
}

/**
 * How long after a subject's erasure from one workspace their usage there still counts as from before it: an
 * answer chat stopped for the erasure (its step runs beside billing's) is recorded moments later.
 */
export const SCOPED_ERASURE_GRACE_MS = 10 * 60_000;

/** A subject erased from one workspace (`private` or an organisation id, as usage events name it). */
export async function markWorkspaceErased(em: Pick<EntityManager, 'query'>, alias: string, workspace: string): Promise<void> {
  await em.query(`INSERT INTO erased_workspaces (alias, workspace) VALUES ($1, $2) ON CONFLICT (alias, workspace) DO UPDATE SET erased_at = now()`, [alias, workspace]);
}
