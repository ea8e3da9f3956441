import { Module, type DynamicModule } from '@nestjs/common';
import { AgeRetentionService, CATEGORY_RETENTION_RULES, PlatformModule, privacyHandledController, privacyRetentionController, RETENTION_RULES, type PlatformContext } from '@ally/platform';
import { BrevoMailer } from './brevo/brevo-mailer.js';
import { NOTIFY_CONFIG, type NotifyConfig } from './config.js';
import { DeliveryWorker } from './deliveries/delivery-worker.js';
import { MailEventsConsumer } from './deliveries/mail-events.consumer.js';
import { DevMailboxController } from './dev-mailbox/dev-mailbox.controller.js';
import { MailRenderer } from './mails/mail-renderer.js';
import { NotifyPrivacyController } from './privacy/notify-privacy.controller.js';
import { NotifyPrivacyService } from './privacy/notify-privacy.service.js';
import { ObjectionsConsumer } from './privacy/objections.consumer.js';
import { RestrictionsConsumer } from './privacy/restrictions.consumer.js';
import { NOTIFY_RETENTION_RULES } from './retention/retention.rules.js';
import { AddressHashes } from './common/address-hash.js';
import { BrevoWebhookService } from './suppressions/brevo-webhook.service.js';
import { WebhookController } from './suppressions/webhook.controller.js';
import { NOTIFY_CATEGORY_RULES } from './retention/category-retention.rules.js';

@Module({})
export class NotifyModule {
  static forRoot(ctx: PlatformContext & { config: NotifyConfig }): DynamicModule {
    return {
      module: NotifyModule,
      imports: [PlatformModule.forRoot(ctx)],
      controllers: [WebhookController, DevMailboxController, NotifyPrivacyController, privacyRetentionController('notify'), privacyHandledController('notify')],
      providers: [
        { provide: NOTIFY_CONFIG, useValue: ctx.config },
        AddressHashes,
        MailRenderer,
        BrevoMailer,
        DeliveryWorker,
        MailEventsConsumer,
        RestrictionsConsumer,
        ObjectionsConsumer,
        BrevoWebhookService,
        NotifyPrivacyService,
        { provide: RETENTION_RULES, useValue: NOTIFY_RETENTION_RULES },
        AgeRetentionService,
        { provide: CATEGORY_RETENTION_RULES, useValue: NOTIFY_CATEGORY_RULES },
      ],
    };
  }
}
