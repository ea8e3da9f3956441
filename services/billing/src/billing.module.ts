import { Module, type DynamicModule } from '@nestjs/common';
import { AgeRetentionService, CATEGORY_RETENTION_RULES, PlatformModule, privacyHandledController, privacyRetentionController, RETENTION_RULES, type PlatformContext } from '@ally/platform';
import { BillingController } from './billing.controller.js';
import { WorkspaceAccess } from './common/workspace-access.service.js';
import { Pseudonyms } from './common/erased-subjects.js';
import { BILLING_CONFIG, type BillingConfig } from './config.js';
import { InvoicesService } from './invoices/invoices.service.js';
import { LedgerConsumer } from './ledger/ledger.consumer.js';
import { MeterReporter } from './ledger/meter-reporter.service.js';
import { ReconciliationService } from './ledger/reconciliation.service.js';
import { UsageService } from './ledger/usage.service.js';
import { PlansService } from './plans/plans.service.js';
import { BillingPrivacyService } from './privacy/billing-privacy.service.js';
import { stripeCustomerRetention } from './privacy/stripe-customer-retention.js';
import { QuotaAlerts } from './quota/quota-alerts.service.js';
import { QuotaService } from './quota/quota.service.js';
import { BILLING_RETENTION_RULES } from './retention.rules.js';
import { StripeClient } from './stripe/stripe.client.js';
import { DissolutionConsumer } from './subscriptions/dissolution.consumer.js';
import { SeatsConsumer } from './subscriptions/seats.consumer.js';
import { SubscriptionsService } from './subscriptions/subscriptions.service.js';
import { StripeWebhookService } from './webhooks/stripe-webhook.service.js';
import { BILLING_CATEGORY_RULES } from './category-retention.rules.js';

@Module({})
export class BillingModule {
  static forRoot(ctx: PlatformContext & { config: BillingConfig }): DynamicModule {
    return {
      module: BillingModule,
      imports: [PlatformModule.forRoot(ctx)],
      controllers: [BillingController, privacyRetentionController('billing'), privacyHandledController('billing')],
      providers: [
        { provide: BILLING_CONFIG, useValue: ctx.config },
        PlansService,
        StripeClient,
        Pseudonyms,
        WorkspaceAccess,
        SubscriptionsService,
        SeatsConsumer,
        DissolutionConsumer,
        StripeWebhookService,
        QuotaService,
        QuotaAlerts,
        LedgerConsumer,
        MeterReporter,
        ReconciliationService,
        UsageService,
        InvoicesService,
        BillingPrivacyService,
        { provide: RETENTION_RULES, useValue: BILLING_RETENTION_RULES },
        AgeRetentionService,
        { provide: CATEGORY_RETENTION_RULES, useValue: BILLING_CATEGORY_RULES },
        stripeCustomerRetention,
      ],
    };
  }
}
