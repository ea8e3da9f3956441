export { identityService } from './identity.service.js';
