import { Module, type DynamicModule } from '@nestjs/common';
import { AgeRetentionService, CATEGORY_RETENTION_RULES, PlatformModule, privacyHandledController, privacyRetentionController, RETENTION_RULES, type PlatformContext } from '@ally/platform';
import { AssistantsService } from './assistants/assistants.service.js';
import { loadCatalog } from './catalog/model-catalog.js';
import { OutsideEuQuarantine } from './catalog/outside-eu-quarantine.js';
import { CATALOG, RouterService } from './catalog/router.service.js';
import { ChatController } from './chat.controller.js';
import { AnswersInFlight } from './completions/answers-in-flight.js';
import { CompatService } from './completions/compat.service.js';
import { CompletionService } from './completions/completion.service.js';
import { ProviderClients } from './completions/provider-clients.js';
import { CHAT_CONFIG, type ChatConfig } from './config.js';
import { ContentFilterService } from './content-filter/content-filter.service.js';
import { ConversationsService } from './conversations/conversations.service.js';
import { MessagesService } from './conversations/messages.service.js';
import { ContentCipher } from './crypto/content-cipher.service.js';
import { DataKeyRewrap } from './crypto/data-key-rewrap.js';
import { PolicyReplicaConsumer } from './policy/policy-replica.consumer.js';
import { RestrictionsConsumer } from './policy/restrictions.consumer.js';
import { PolicyService } from './policy/policy.service.js';
import { ChatPrivacyService } from './privacy/chat-privacy.service.js';
import { QuotaGate } from './quota/quota.gate.js';
import { CHAT_RETENTION_RULES } from './retention.rules.js';
import { CHAT_CATEGORY_RULES } from './category-retention.rules.js';

@Module({})
export class ChatModule {
  static forRoot(ctx: PlatformContext & { config: ChatConfig }): DynamicModule {
    const catalog = loadCatalog(ctx.config.MODEL_CATALOG_FILE, ctx.env, ctx.config.NODE_ENV === 'production');
    if (catalog.some((d) => d.apiKey === 'emulator')) {
      ctx.logger.info(`${ctx.config.NODE_ENV}: deployments without provider keys go to the OpenAI/Azure emulator; nothing leaves this machine`);
    }
    return {
      module: ChatModule,
      imports: [PlatformModule.forRoot(ctx)],
      controllers: [ChatController, privacyRetentionController('chat'), privacyHandledController('chat')],
      providers: [
        { provide: CHAT_CONFIG, useValue: ctx.config },
        { provide: CATALOG, useValue: catalog },
        RouterService,
        OutsideEuQuarantine,
        ProviderClients,
        PolicyService,
        PolicyReplicaConsumer,
        RestrictionsConsumer,
        ContentFilterService,
        QuotaGate,
        ContentCipher,
        DataKeyRewrap,
        CompletionService,
        AnswersInFlight,
        CompatService,
        AssistantsService,
        ConversationsService,
        MessagesService,
        ChatPrivacyService,
        { provide: RETENTION_RULES, useValue: CHAT_RETENTION_RULES },
        AgeRetentionService,
        { provide: CATEGORY_RETENTION_RULES, useValue: CHAT_CATEGORY_RULES },
      ],
    };
  }
}
