export { privacyService } from './privacy.service.js';
export { RetentionSchedule } from './retention/retention-schedule.js';
export { RETENTION_RUN_LOCK } from './retention/retention-runs.service.js';
