import { z } from 'zod';
import { pageParams } from '../common/query-params.js';
import { rpc } from '../common/rpc.js';
import { pageOf, replyTime } from '../common/replies.js';
import { emailSchema } from '../identity/identity.schemas.js';

export const devMailReply = z.strictObject({
  messageId: z.string(),
  receivedAt: replyTime,
  to: z.array(z.string()),
  subject: z.string(),
  textContent: z.string().optional(),
  links: z.array(z.string()),
  tokens: z.array(z.string()).describe('`token` query parameters found in the links (verification, reset, invitation)'),
});
export type DevMail = z.infer<typeof devMailReply>;

export const devMailboxInput = z.strictObject({ to: emailSchema.optional(), ...pageParams });
export const brevoWebhookInput = z.strictObject({
  /** What the caller presented (Authorization bearer or `?token=`), checked by notify. */
  secret: z.string().max(512),
  payload: z.unknown(),
});

export const NotifyRpc = {
  devMailbox: rpc(pageOf(devMailReply))('ally.rpc.notify.dev-mailbox.list', devMailboxInput, { authenticated: false }),
  /** `skipped`: events of a batch that were malformed (the others are applied: Brevo would drop the whole batch on a 4xx). */
  brevoWebhook: rpc(z.strictObject({ applied: z.number().int(), skipped: z.number().int() }))('ally.rpc.notify.webhook.brevo', brevoWebhookInput, { authenticated: false }),
} as const;
