export { chatService } from './chat.service.js';
export { AssistantsService } from './assistants/assistants.service.js';
