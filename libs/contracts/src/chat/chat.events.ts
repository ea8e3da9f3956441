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
  }),
} as const;
