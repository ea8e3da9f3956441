import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { parseRpcInput, PrivacyRpc, type RpcRequest } from '@ally/contracts';
import { ConsentsService } from './consents.service.js';

/** Consent records: no login needed, the subject id is pseudonymous. */
@Controller()
export class ConsentsController {
  constructor(private readonly consents: ConsentsService) {}

  @MessagePattern(PrivacyRpc.recordConsent.subject)
  record(@Payload() req: RpcRequest) {
    return this.consents.record(parseRpcInput(PrivacyRpc.recordConsent.input, req.input), req.meta);
  }

  @MessagePattern(PrivacyRpc.getConsents.subject)
  get(@Payload() req: RpcRequest) {
    const { subjectId, limit, cursor } = parseRpcInput(PrivacyRpc.getConsents.input, req.input, 'query');
    return this.consents.get(subjectId, { limit, cursor });
  }

  @MessagePattern(PrivacyRpc.withdrawConsents.subject)
  withdraw(@Payload() req: RpcRequest) {
    return this.consents.withdraw(parseRpcInput(PrivacyRpc.withdrawConsents.input, req.input, 'path').subjectId, req.meta);
  }
}
