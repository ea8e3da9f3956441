import { z } from 'zod';
import { wholeListParams } from '../common/query-params.js';
import { rpc } from '../common/rpc.js';
import { pageOf } from '../common/replies.js';
import * as s from './billing.schemas.js';
import * as r from './billing.replies.js';

export const BillingRpc = {
  plans: rpc(pageOf(r.planReply))('ally.rpc.billing.plan.list', z.strictObject({ ...wholeListParams }), { authenticated: false }),
  subscription: rpc(r.subscriptionReply)('ally.rpc.billing.subscription.get', s.billingWorkspaceInput),
  checkout: rpc(r.redirectUrlReply)('ally.rpc.billing.checkout.create', s.checkoutInput),
  portal: rpc(r.redirectUrlReply)('ally.rpc.billing.portal.create', s.billingWorkspaceInput),
  usage: rpc(r.usageReply)('ally.rpc.billing.usage.get', s.usageInput),
  invoices: rpc(pageOf(r.invoiceReply))('ally.rpc.billing.invoice.list', s.listInvoicesInput),
  setCap: rpc(r.capReply)('ally.rpc.billing.cap.set', s.capInput),
  stripeWebhook: rpc(r.webhookReceivedReply)('ally.rpc.billing.webhook.stripe', s.stripeWebhookInput, { authenticated: false }),
  /** Asked by chat before every provider call. */
  quotaCheck: rpc<r.QuotaAnswer>()('ally.rpc.billing.quota.check', s.quotaCheckInput, { authenticated: false }),
} as const;
