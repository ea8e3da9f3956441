import { main } from '@ally/platform';
import { identityService } from './identity.service.js';

await main(identityService);
