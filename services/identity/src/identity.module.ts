import { Module, type DynamicModule } from '@nestjs/common';
import { AgeRetentionService, CATEGORY_RETENTION_RULES, PlatformModule, privacyHandledController, privacyRetentionController, RETENTION_RULES, type PlatformContext } from '@ally/platform';
import { ApiKeysController } from './api-keys/api-keys.controller.js';
import { ApiKeysService } from './api-keys/api-keys.service.js';
import { AuthController } from './auth/auth.controller.js';
import { AuthService } from './auth/auth.service.js';
import { OneTimeTokensService } from './auth/one-time-tokens.service.js';
import { PasswordService } from './auth/password.service.js';
import { AddressHashes } from './common/address-hash.js';
import { IdentityOutbox } from './common/identity-outbox.js';
import { IDENTITY_CONFIG, type IdentityConfig } from './config.js';
import { OrgsController } from './orgs/orgs.controller.js';
import { OrgsService } from './orgs/orgs.service.js';
import { PlatformRolesController } from './platform-roles/platform-roles.controller.js';
import { PlatformRolesService } from './platform-roles/platform-roles.service.js';
import { IdentityPrivacyController } from './privacy/identity-privacy.controller.js';
import { IdentityPrivacyService } from './privacy/identity-privacy.service.js';
import { ObjectionsConsumer } from './privacy/objections.consumer.js';
import { RestrictionsConsumer } from './privacy/restrictions.consumer.js';
import { IDENTITY_RETENTION_RULES } from './retention/retention.rules.js';
import { LoginThrottleService } from './sessions/login-throttle.service.js';
import { SessionEndBroadcast } from './sessions/session-end-broadcast.js';
import { SessionsService } from './sessions/sessions.service.js';
import { JwksController } from './signing-keys/jwks.controller.js';
import { KeyChangeBroadcast } from './signing-keys/key-change-broadcast.js';
import { SigningKeysService } from './signing-keys/signing-keys.service.js';
import { SsoController } from './sso/sso.controller.js';
import { SsoService } from './sso/sso.service.js';
import { ContactsController } from './users/contacts.controller.js';
import { MeController } from './users/me.controller.js';
import { MeService } from './users/me.service.js';
import { UsersRepository } from './users/users.repository.js';
import { identityCategoryRules } from './retention/category-retention.rules.js';

@Module({})
export class IdentityModule {
  static forRoot(ctx: PlatformContext & { config: IdentityConfig }): DynamicModule {
    return {
      module: IdentityModule,
      imports: [PlatformModule.forRoot(ctx)],
      controllers: [AuthController, MeController, OrgsController, ApiKeysController, JwksController, SsoController, IdentityPrivacyController, ContactsController, PlatformRolesController, privacyRetentionController('identity'), privacyHandledController('identity')],
      providers: [
        { provide: IDENTITY_CONFIG, useValue: ctx.config },
        IdentityOutbox,
        AddressHashes,
        UsersRepository,
        PasswordService,
        OneTimeTokensService,
        SigningKeysService,
        SessionsService,
        SessionEndBroadcast,
        KeyChangeBroadcast,
        LoginThrottleService,
        AuthService,
        MeService,
        OrgsService,
        ApiKeysService,
        SsoService,
        PlatformRolesService,
        IdentityPrivacyService,
        ObjectionsConsumer,
        RestrictionsConsumer,
        { provide: RETENTION_RULES, useValue: IDENTITY_RETENTION_RULES },
        AgeRetentionService,
        { provide: CATEGORY_RETENTION_RULES, useValue: identityCategoryRules(ctx.config) },
      ],
    };
  }
}
