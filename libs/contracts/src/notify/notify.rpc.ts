import { z } from 'zod';
import { pageParams } from '../common/query-params.js';
import { rpc } from '../common/rpc.js';
import type { Page } from '../identity/identity.replies.js';
import { emailSchema } from '../identity/identity.schemas.js';

export interface DevMail {
  messageId: string;
  receivedAt: string;
  to: string[];
  subject: string;
  textContent?: string;
  links: string[];
  /** `token` query parameters found in the links (verification, reset, invitation). */
  tokens: string[];
}

export const devMailboxInput = z.strictObject({ to: emailSchema.optional(), ...pageParams });
export const brevoWebhookInput = z.strictObject({
  /** What the caller presented (Authorization bearer or `?token=`), checked by notify. */
  secret: z.string().max(512),
  payload: z.unknown(),
});

export const NotifyRpc = {
  devMailbox: rpc<Page<DevMail>>()('ally.rpc.notify.dev-mailbox.list', devMailboxInput, { authenticated: false }),
  brevoWebhook: rpc<{ applied: number }>()('ally.rpc.notify.webhook.brevo', brevoWebhookInput, { authenticated: false }),
} as const;
