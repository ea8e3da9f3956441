export { billingService } from './billing.service.js';
