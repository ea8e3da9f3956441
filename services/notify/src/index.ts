export { notifyService } from './notify.service.js';
