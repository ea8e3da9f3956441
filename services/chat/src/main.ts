import { main } from '@ally/platform';
import { chatService } from './chat.service.js';

await main(chatService);
