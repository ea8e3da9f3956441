import { main } from '@ally/platform';
import { notifyService } from './notify.service.js';

await main(notifyService);
