export { chatService } from './chat.service.js';
