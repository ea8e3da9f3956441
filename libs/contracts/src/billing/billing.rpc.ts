import { z } from 'zod';
import { wholeListParams } from '../common/query-params.js';
import { rpc } from '../common/rpc.js';
import type { Page } from '../identity/identity.replies.js';
import * as s from './billing.schemas.js';
import type * as r from './billing.replies.js';

export const BillingRpc = {
  plans: rpc<Page<r.Plan>>()('ally.rpc.billing.plan.list', z.strictObject({ ...wholeListParams }), { authenticated: false }),
  subscription: rpc<r.SubscriptionView>()('ally.rpc.billing.subscription.get', s.billingWorkspaceInput),
  checkout: rpc<{ url: string }>()('ally.rpc.billing.checkout.create', s.checkoutInput),
  portal: rpc<{ url: string }>()('ally.rpc.billing.portal.create', s.billingWorkspaceInput),
  usage: rpc<r.UsageView>()('ally.rpc.billing.usage.get', s.usageInput),
  invoices: rpc<Page<r.InvoiceView>>()('ally.rpc.billing.invoice.list', s.listInvoicesInput),
  setCap: rpc<{ workspace: string; userId: string | null; monthlyTokens: number | null }>()('ally.rpc.billing.cap.set', s.capInput),
  stripeWebhook: rpc<{ received: true; duplicate: boolean }>()('ally.rpc.billing.webhook.stripe', s.stripeWebhookInput, { authenticated: false }),
  /** Asked by chat before every provider call. */
  quotaCheck: rpc<r.QuotaAnswer>()('ally.rpc.billing.quota.check', s.quotaCheckInput, { authenticated: false }),
} as const;
