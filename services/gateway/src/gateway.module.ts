import { Module, type DynamicModule } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PlatformModule, type PlatformContext } from '@ally/platform';
import { AuthGuard } from './auth/auth.guard.js';
import { JwksCache } from './auth/jwks-cache.service.js';
import { SessionLiveness } from './auth/session-liveness.js';
import { WebController } from './web/web.controller.js';
import { GATEWAY_CONFIG, type GatewayConfig } from './config.js';
import { AuthController } from './identity/auth.controller.js';
import { MeController } from './identity/me.controller.js';
import { OrgsController } from './identity/orgs.controller.js';
import { NotifyController } from './notify/notify.controller.js';
import { BillingController } from './billing/billing.controller.js';
import { PublicBillingController } from './billing/public-billing.controller.js';
import { ChatController } from './chat/chat.controller.js';
import { OpenAiCompatController } from './chat/openai-compat.controller.js';
import { AnswersAtShutdown } from './chat/answers-at-shutdown.js';
import { CancellableCalls } from './chat/cancellable-call.js';
import { SseRelay } from './chat/sse-relay.service.js';
import { ChatPolicySync } from './chat/policy-sync.service.js';
import { PrivacyAdminController } from './privacy/privacy-admin.controller.js';
import { ConsentsController } from './privacy/consents.controller.js';
import { PrivacyController } from './privacy/privacy.controller.js';

@Module({})
export class GatewayModule {
  static forRoot(ctx: PlatformContext & { config: GatewayConfig }): DynamicModule {
    return {
      module: GatewayModule,
      imports: [PlatformModule.forRoot(ctx)],
      controllers: [AuthController, MeController, OrgsController, NotifyController, ChatController, OpenAiCompatController, BillingController, PublicBillingController, PrivacyController, ConsentsController, PrivacyAdminController, WebController],
      providers: [
        { provide: GATEWAY_CONFIG, useValue: ctx.config },
        JwksCache,
        SessionLiveness,
        AnswersAtShutdown,
        SseRelay,
        CancellableCalls,
        ChatPolicySync,
        { provide: APP_GUARD, useClass: AuthGuard },
      ],
    };
  }
}
