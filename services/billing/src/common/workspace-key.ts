import { WORKSPACE_KEY } from '@ally/contracts';

/**
 * Billing's name for a workspace: an organisation's id, or `private:<userId>`,
 * since every user has a private workspace of their own.
 */
export const workspaceKey = (workspace: string, userId: string): string => (workspace === 'private' ? `private:${userId}` : workspace);

/** Whether `key` is such a name (what Checkout writes into Stripe's metadata), not something a forged event made up. */
export const isWorkspaceKey = (key: string): boolean => WORKSPACE_KEY.test(key);

/** The user whose private workspace `key` names, if it names one. */
export const privateOwnerOf = (key: string | null | undefined): string | undefined => (key?.startsWith('private:') ? key.slice('private:'.length) : undefined);

export const currentPeriod = (at = new Date()): string => at.toISOString().slice(0, 7);
