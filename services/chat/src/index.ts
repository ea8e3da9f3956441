export { chatService } from './chat.service.js';
export { AssistantsService } from './assistants/assistants.service.js';
export { AnswersInFlight } from './completions/answers-in-flight.js';
export { CompletionService } from './completions/completion.service.js';
export { RouterService } from './catalog/router.service.js';
