import { Controller, Inject, type Type } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { DataSource } from 'typeorm';
import { parseInput, privacyRetentionRpc, type PrivacyRetentionReport, type RpcRequest } from '@ally/contracts';
import { retentionPass, type CategoryRetentionRule } from '@ally/persistence';

/** The service's CategoryRetentionRule list. */
export const CATEGORY_RETENTION_RULES = Symbol('CATEGORY_RETENTION_RULES');

/**
 * A service's answer to privacy's retention runs, from its rule list:
 * `controllers: [privacyRetentionController('notify')]` plus
 * `{ provide: CATEGORY_RETENTION_RULES, useValue: [...] }`.
 */
export function privacyRetentionController(service: string): Type<unknown> {
  const contract = privacyRetentionRpc(service);

  @Controller()
  class PrivacyRetentionController {
    constructor(
      private readonly ds: DataSource,
      @Inject(CATEGORY_RETENTION_RULES) private readonly rules: CategoryRetentionRule[],
    ) {}

    @MessagePattern(contract.subject)
    async retention(@Payload() req: RpcRequest): Promise<PrivacyRetentionReport> {
      const input = parseInput(contract.input, req.input);
      return { service, results: await retentionPass(this.ds, this.rules, input) };
    }
  }
  Object.defineProperty(PrivacyRetentionController, 'name', { value: `${service[0].toUpperCase()}${service.slice(1)}PrivacyRetentionController` });
  return PrivacyRetentionController;
}
