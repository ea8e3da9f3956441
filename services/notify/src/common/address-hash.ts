import { createHash } from 'node:crypto';

/** The log and the suppression list keep this instead of the address. */
export const hashAddress = (email: string): string => createHash('sha256').update(email.trim().toLowerCase()).digest('hex');
