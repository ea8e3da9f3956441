import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { NotifyRpc, parseRpcInput, type RpcRequest } from '@ally/contracts';
import { BrevoWebhookService } from './brevo-webhook.service.js';

@Controller()
export class WebhookController {
  constructor(private readonly webhooks: BrevoWebhookService) {}

  @MessagePattern(NotifyRpc.brevoWebhook.subject)
  brevo(@Payload() req: RpcRequest) {
    const { secret, payload } = parseRpcInput(NotifyRpc.brevoWebhook.input, req.input);
    return this.webhooks.apply(secret, payload);
  }
}
