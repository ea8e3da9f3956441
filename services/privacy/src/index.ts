export { privacyService } from './privacy.service.js';
export { RetentionSchedule } from './retention/retention-schedule.js';
