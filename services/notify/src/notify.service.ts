import { MESSAGING_MIGRATIONS } from '@ally/messaging';
import type { ServiceDefinition } from '@ally/platform';
import { notifyConfigSchema, type NotifyConfig } from './config.js';
import { DeliveryEntity } from './deliveries/delivery.entity.js';
import { InitialSchema1764200000000 } from './migrations/1764200000000-initial-schema.js';
import { OneMailPerRecipient1764600000000 } from './migrations/1764600000000-one-mail-per-recipient.js';
import { ErasedSubjects1765000000000 } from './migrations/1765000000000-erased-subjects.js';
import { RecipientIndex1765800000000 } from './migrations/1765800000000-recipient-index.js';
import { MailWorkspace1765900000000 } from './migrations/1765900000000-mail-workspace.js';
import { Restrictions1766000000000 } from './migrations/1766000000000-restrictions.js';
import { MailAbout1766500000000 } from './migrations/1766500000000-mail-about.js';
import { FarewellSent1766600000000 } from './migrations/1766600000000-farewell-sent.js';
import { NotifyModule } from './notify.module.js';
import { SuppressionEntity } from './suppressions/suppression.entity.js';

/** notify: every mail Ally sends, through Brevo, driven by events. */
export const notifyService: ServiceDefinition<NotifyConfig> = {
  name: 'notify',
  configSchema: notifyConfigSchema,
  database: { schema: 'notify', entities: [DeliveryEntity, SuppressionEntity], migrations: [InitialSchema1764200000000, OneMailPerRecipient1764600000000, ErasedSubjects1765000000000, RecipientIndex1765800000000, MailWorkspace1765900000000, Restrictions1766000000000, MailAbout1766500000000, FarewellSent1766600000000, ...MESSAGING_MIGRATIONS] },
  module: (ctx) => NotifyModule.forRoot(ctx),
};
