/**
 * Billing's name for a workspace: an organisation's id, or `private:<userId>`,
 * since every user has a private workspace of their own.
 */
export const workspaceKey = (workspace: string, userId: string): string => (workspace === 'private' ? `private:${userId}` : workspace);

export const currentPeriod = (at = new Date()): string => at.toISOString().slice(0, 7);
