export { privacyService } from './privacy.service.js';
