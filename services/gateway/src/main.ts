import { main } from '@ally/platform';
import { gatewayService } from './gateway.service.js';

await main(gatewayService);
