import { PrivacyRpc, ProblemError, type Actor } from '@ally/contracts';
import type { RpcClient } from '@ally/messaging';

/**
 * A legal hold keeps the person's data until it is released: their own deletions wait too, as their erasure does.
 * `what`: the thing they asked to delete, as the refusal names it ("This conversation"); `authorId`: who wrote it,
 * when that is someone else (an organisation's assistant an admin deletes).
 */
export async function assertNotHeld(rpc: RpcClient, actor: Actor, what: string, authorId?: string): Promise<void> {
  const { held } = await rpc.call(PrivacyRpc.ownHold, authorId && authorId !== actor.userId ? { authorId } : {}, { actor });
  if (held) throw new ProblemError(409, `${what} is kept under a legal hold; it can be deleted once the hold is released`, { type: 'https://ally.eu/problems/legal-hold' });
}
