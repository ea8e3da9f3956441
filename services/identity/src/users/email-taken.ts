import { ProblemError } from '@ally/contracts';

/** An address another account has: at registration, and when an account asks to move to it. */
export const emailTaken = () => new ProblemError(409, 'An account with this email address already exists', { errors: [{ field: 'email', message: 'is already registered' }] });
