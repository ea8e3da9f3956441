import { z } from 'zod';
import { ProblemError } from './problem.js';

/** Who is calling, as the gateway established it. Services re-check ownership themselves. */
export const actorSchema = z.object({
  userId: z.uuid(),
  /** Set when the caller authenticated with an API key scoped to a workspace. */
  apiKeyWorkspace: z.string().optional(),
  platformRoles: z.array(z.enum(['compliance', 'admin'])).default([]),
  /** The session an access token belongs to (none for an API key): identity re-checks it where a change must not outlive it. */
  sessionId: z.string().optional(),
});
export type Actor = z.infer<typeof actorSchema>;

export const requestMetaSchema = z.object({
  ip: z.string().optional(),
  userAgent: z.string().optional(),
  /** The request's Accept-Language, where a service picks a default language from it (registration). */
  acceptLanguage: z.string().optional(),
  correlationId: z.string().optional(),
});
export type RequestMeta = z.infer<typeof requestMetaSchema>;

/** One RPC: its subject and the schema of `input`; `R` is the reply type. */
export interface RpcContract<I extends z.ZodType, R> {
  subject: string;
  input: I;
  authenticated: boolean;
  /** The reply's schema where the gateway answers it to the public (its OpenAPI document); not checked at run time. */
  replySchema?: z.ZodType<R>;
  /** Phantom field carrying the reply type. */
  readonly reply?: R;
}

/**
 * `rpc<R>()(subject, input)` for a reply only services read; `rpc(schema)(…)`
 * for one the public sees, its type the schema's.
 */
export function rpc<R>(replySchema?: z.ZodType<R>) {
  return <I extends z.ZodType>(subject: string, input: I, opts: { authenticated?: boolean } = {}): RpcContract<I, R> => ({
    subject,
    input,
    authenticated: opts.authenticated ?? true,
    ...(replySchema ? { replySchema } : {}),
  });
}

export interface RpcRequest<I = unknown> {
  actor?: Actor;
  input: I;
  meta?: RequestMeta;
}

export type RpcInput<C> = C extends RpcContract<infer I, unknown> ? z.input<I> : never;
export type RpcReply<C> = C extends RpcContract<z.ZodType, infer R> ? R : never;

/** The authenticated caller of an RPC; the gateway always sends one for protected routes. */
export function actorOf(req: RpcRequest): Actor {
  if (!req?.actor?.userId) throw new ProblemError(401, 'Authentication required');
  return req.actor;
}
