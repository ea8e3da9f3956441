import { Controller, type Type } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { parseRpcInput, privacyRpcs, type PrivacyEventHandled, type RpcRequest } from '@ally/contracts';
import { EventConsumers } from './event-consumers.service.js';

/**
 * A service's answer to privacy asking whether it acted on a restriction or an objection
 * (`ally.rpc.<svc>.privacy.handled`): privacy completes the request's step for the service only once it did,
 * not once the event was published. `controllers: [privacyHandledController('chat')]`.
 */
export function privacyHandledController(service: string): Type<unknown> {
  const contract = privacyRpcs(service).handled;

  @Controller()
  class PrivacyHandledController {
    constructor(private readonly consumers: EventConsumers) {}

    @MessagePattern(contract.subject)
    async handled(@Payload() req: RpcRequest): Promise<PrivacyEventHandled> {
      const { eventId, type } = parseRpcInput(contract.input, req.input);
      return { service, ...(await this.consumers.handled(eventId, type)) };
    }
  }
  Object.defineProperty(PrivacyHandledController, 'name', { value: `${service[0].toUpperCase()}${service.slice(1)}PrivacyHandledController` });
  return PrivacyHandledController;
}
