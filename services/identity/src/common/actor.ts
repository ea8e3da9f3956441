import { ProblemError, type Actor, type RpcRequest } from '@ally/contracts';

/** The authenticated caller of an RPC; the gateway always sends one for protected routes. */
export function actorOf(req: RpcRequest): Actor {
  if (!req?.actor?.userId) throw new ProblemError(401, 'Authentication required');
  return req.actor;
}
