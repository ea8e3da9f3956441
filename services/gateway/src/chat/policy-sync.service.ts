import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { ChatRpc, IdentityRpc, managesOrg, ProblemError, type Actor, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { LOGGER } from '@ally/platform';

/** chat has the change or is not there to route anything; longer would hold the user's answer for nothing. */
const SYNC_TIMEOUT_MS = 3_000;

/**
 * After identity answered a change that decides routing (a user's
 * `restrictToEu`, an organisation's policy or membership), chat reads it into its replica
 * before the gateway answers: from then on no message follows the old
 * setting. identity's event still brings the change to every replica; this
 * only closes the window until it arrives. A chat that cannot be reached
 * does not fail the change, which identity has already made.
 */
@Injectable()
export class ChatPolicySync {
  constructor(
    private readonly rpc: RpcClient,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * Before identity stores an organisation's `allowedModels`: a name chat's
   * catalog does not know would allow nothing, and so block every business
   * conversation of the organisation. identity cannot check it; chat can.
   * Someone who may not change the policy hears that first, from identity
   * (a stranger 404 here, a member 403 when it is asked to store it).
   */
  async assertKnownModels(actor: Actor, meta: RequestMeta, orgId: string, models: string[] | null | undefined): Promise<void> {
    if (!models?.length) return;
    const { role } = await this.rpc.call(IdentityRpc.getOrg, { orgId }, { actor, meta });
    if (!managesOrg(role)) return;
    const { unknown, known } = await this.rpc.call(ChatRpc.checkCatalog, { models }, { actor, meta, timeoutMs: SYNC_TIMEOUT_MS });
    if (unknown.length === 0) return;
    const names = unknown.map((m) => `"${m}"`).join(', ');
    throw new ProblemError(400, `Unknown model${unknown.length > 1 ? 's' : ''} ${names}: the catalog has ${known.join(', ')}`, {
      errors: [{ field: 'allowedModels', message: `${names} ${unknown.length > 1 ? 'are' : 'is'} not in the model catalog` }],
    });
  }

  /** `orgId`: an organisation's policy changed, or (`removedMember`) one of its members was removed; otherwise the caller's settings. */
  async afterChange(actor: Actor, meta: RequestMeta, orgId?: string, removedMember?: string): Promise<void> {
    try {
      await this.rpc.call(ChatRpc.refreshPolicy, { ...(orgId ? { orgId } : {}), ...(removedMember ? { removedMember } : {}) }, { actor, meta, timeoutMs: SYNC_TIMEOUT_MS });
    } catch (err) {
      // An error, not a warning: until the event arrives, a message may still follow the old setting.
      this.logger.error({ err: String(err), orgId }, "chat did not take the routing change now; identity's event brings it");
    }
  }
}
