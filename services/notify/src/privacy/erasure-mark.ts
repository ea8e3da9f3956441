import { createHash } from 'node:crypto';

/** How notify remembers an erased subject for a while without keeping their id. */
export const erasureMark = (userId: string): string => createHash('sha256').update(`erased:${userId}`).digest('hex');
