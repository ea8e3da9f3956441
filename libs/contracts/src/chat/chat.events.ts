import { z } from 'zod';

export const ChatEvents = {
  /** Billing turns this into its usage ledger exactly once (keyed by messageId). */
  'chat.completion.recorded': z.object({
    messageId: z.uuid(),
    workspace: z.string(),
    userId: z.uuid(),
    model: z.string(),
    deployment: z.string(),
    region: z.string(),
    euResident: z.boolean(),
    promptTokens: z.number().int().min(0),
    completionTokens: z.number().int().min(0),
    /** In EUR, from the catalog's price of the deployment that served it. */
    cost: z.number().min(0).default(0),
  }),
} as const;
