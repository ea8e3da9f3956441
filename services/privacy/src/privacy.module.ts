import { Module, type DynamicModule } from '@nestjs/common';
import { AgeRetentionService, PlatformModule, RETENTION_RULES, type PlatformContext } from '@ally/platform';
import { AdminController } from './admin/admin.controller.js';
import { AuditTrail } from './audit/audit-trail.service.js';
import { PackageCipher } from './common/package-cipher.js';
import { PrivacyOutbox } from './common/privacy-outbox.js';
import { SubjectHasher } from './common/subject-hash.js';
import { PRIVACY_CONFIG, type PrivacyConfig } from './config.js';
import { ConsentsController } from './consents/consents.controller.js';
import { ConsentsService } from './consents/consents.service.js';
import { DownloadsService } from './exports/downloads.service.js';
import { LegalHoldsService } from './legal-holds/legal-holds.service.js';
import { RectificationConsumer } from './rectification/rectification.consumer.js';
import { ProcessingRegisterService } from './register/processing-register.service.js';
import { RequestsController } from './requests/requests.controller.js';
import { RequestsRepository } from './requests/requests.repository.js';
import { DecisionsService } from './requests/decisions.service.js';
import { RequestsService } from './requests/requests.service.js';
import { KubernetesJobLauncher } from './retention/kubernetes-job.launcher.js';
import { OwnRetention } from './retention/own-retention.js';
import { PRIVACY_RETENTION_RULES } from './retention/own-rules.js';
import { RetentionPoliciesService } from './retention/retention-policies.service.js';
import { RetentionRunsService } from './retention/retention-runs.service.js';
import { RetentionSchedule } from './retention/retention-schedule.js';
import { RequestFinalizer } from './sagas/request-finalizer.js';
import { SagaWorker } from './sagas/saga-worker.js';
import { StepRunner } from './sagas/step-runner.js';

@Module({})
export class PrivacyModule {
  static forRoot(ctx: PlatformContext & { config: PrivacyConfig }): DynamicModule {
    return {
      module: PrivacyModule,
      imports: [PlatformModule.forRoot(ctx)],
      controllers: [RequestsController, ConsentsController, AdminController],
      providers: [
        { provide: PRIVACY_CONFIG, useValue: ctx.config },
        PrivacyOutbox,
        SubjectHasher,
        PackageCipher,
        AuditTrail,
        RequestsRepository,
        RequestsService,
        DecisionsService,
        StepRunner,
        RequestFinalizer,
        SagaWorker,
        DownloadsService,
        ConsentsService,
        LegalHoldsService,
        RetentionPoliciesService,
        OwnRetention,
        KubernetesJobLauncher,
        RetentionRunsService,
        RetentionSchedule,
        ProcessingRegisterService,
        RectificationConsumer,
        { provide: RETENTION_RULES, useValue: PRIVACY_RETENTION_RULES },
        AgeRetentionService,
      ],
    };
  }
}
