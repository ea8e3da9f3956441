import { main } from '@ally/platform';
import { billingService } from './billing.service.js';

await main(billingService);
