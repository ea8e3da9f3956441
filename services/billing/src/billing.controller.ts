import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { actorOf, BillingRpc, listPage, parseRpcInput, privacyRpcs, type RpcRequest } from '@ally/contracts';
import { InvoicesService } from './invoices/invoices.service.js';
import { UsageService } from './ledger/usage.service.js';
import { PlansService } from './plans/plans.service.js';
import { BillingPrivacyService } from './privacy/billing-privacy.service.js';
import { QuotaService } from './quota/quota.service.js';
import { SubscriptionsService } from './subscriptions/subscriptions.service.js';
import { StripeWebhookService } from './webhooks/stripe-webhook.service.js';

const BillingPrivacyRpc = privacyRpcs('billing');

@Controller()
export class BillingController {
  constructor(
    private readonly plans: PlansService,
    private readonly subscriptions: SubscriptionsService,
    private readonly usage: UsageService,
    private readonly invoices: InvoicesService,
    private readonly quota: QuotaService,
    private readonly webhooks: StripeWebhookService,
    private readonly privacy: BillingPrivacyService,
  ) {}

  @MessagePattern(BillingRpc.plans.subject)
  listPlans(@Payload() req: RpcRequest) {
    return listPage(this.plans.list(), (plan) => plan.id, parseRpcInput(BillingRpc.plans.input, req.input, 'query'));
  }

  @MessagePattern(BillingRpc.subscription.subject)
  subscription(@Payload() req: RpcRequest) {
    return this.subscriptions.view(actorOf(req), parseRpcInput(BillingRpc.subscription.input, req.input, 'query').workspace);
  }

  @MessagePattern(BillingRpc.checkout.subject)
  checkout(@Payload() req: RpcRequest) {
    const { workspace, plan } = parseRpcInput(BillingRpc.checkout.input, req.input);
    return this.subscriptions.checkout(actorOf(req), workspace, plan);
  }

  @MessagePattern(BillingRpc.portal.subject)
  portal(@Payload() req: RpcRequest) {
    return this.subscriptions.portal(actorOf(req), parseRpcInput(BillingRpc.portal.input, req.input).workspace);
  }

  @MessagePattern(BillingRpc.usage.subject)
  usageView(@Payload() req: RpcRequest) {
    const { workspace, period } = parseRpcInput(BillingRpc.usage.input, req.input, 'query');
    return this.usage.view(actorOf(req), workspace, period);
  }

  @MessagePattern(BillingRpc.invoices.subject)
  listInvoices(@Payload() req: RpcRequest) {
    const { workspace, limit, cursor } = parseRpcInput(BillingRpc.invoices.input, req.input, 'query');
    return this.invoices.list(actorOf(req), workspace, limit, cursor);
  }

  @MessagePattern(BillingRpc.setCap.subject)
  setCap(@Payload() req: RpcRequest) {
    return this.usage.setCap(actorOf(req), parseRpcInput(BillingRpc.setCap.input, req.input));
  }

  @MessagePattern(BillingRpc.stripeWebhook.subject)
  stripeWebhook(@Payload() req: RpcRequest) {
    const { payload, signature } = parseRpcInput(BillingRpc.stripeWebhook.input, req.input);
    return this.webhooks.receive(payload, signature);
  }

  @MessagePattern(BillingRpc.quotaCheck.subject)
  quotaCheck(@Payload() req: RpcRequest) {
    const { workspace, userId } = parseRpcInput(BillingRpc.quotaCheck.input, req.input);
    return this.quota.check(workspace, userId);
  }

  @MessagePattern(BillingPrivacyRpc.export.subject)
  async privacyExport(@Payload() req: RpcRequest) {
    const { userId, scope, page } = parseRpcInput(BillingPrivacyRpc.export.input, req.input);
    return this.privacy.export(userId, scope, page);
  }

  @MessagePattern(BillingPrivacyRpc.erase.subject)
  privacyErase(@Payload() req: RpcRequest) {
    const { userId, scope } = parseRpcInput(BillingPrivacyRpc.erase.input, req.input);
    return this.privacy.erase(userId, scope);
  }
}
