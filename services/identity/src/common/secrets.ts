import { createHash, randomBytes } from 'node:crypto';

/** A random secret for links and refresh tokens: 256 bits, URL-safe. */
export const newSecret = (bytes = 32): string => randomBytes(bytes).toString('base64url');

/** Secrets are stored only as hashes; their entropy makes a fast hash sufficient. */
export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('base64url');
