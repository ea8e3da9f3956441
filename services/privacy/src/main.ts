import { main } from '@ally/platform';
import { privacyService } from './privacy.service.js';

await main(privacyService);
