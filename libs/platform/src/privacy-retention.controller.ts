import { Controller, Inject, Optional, type Type } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { DataSource } from 'typeorm';
import { parseInput, privacyRetentionRpc, type PrivacyRetentionReport, type RpcRequest } from '@ally/contracts';
import { retentionPass, type CategoryRetentionRule, type RetentionPassInput } from '@ally/persistence';

/** The service's CategoryRetentionRule list. */
export const CATEGORY_RETENTION_RULES = Symbol('CATEGORY_RETENTION_RULES');

/**
 * Optional: what a service does before a real run deletes its rows (a copy
 * at a processor that only the rows still name); its failure fails the
 * service's part of the run, and the rows stay for the next one.
 */
export const BEFORE_RETENTION = Symbol('BEFORE_RETENTION');
export type BeforeRetention = (input: RetentionPassInput) => Promise<void>;

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
      @Optional() @Inject(BEFORE_RETENTION) private readonly before?: BeforeRetention,
    ) {}

    @MessagePattern(contract.subject)
    async retention(@Payload() req: RpcRequest): Promise<PrivacyRetentionReport> {
      // One moment for the hook and the pass: a row that comes of age between them is left to the next run.
      const input = { ...parseInput(contract.input, req.input), asOf: new Date().toISOString() };
      if (!input.dryRun) await this.before?.(input);
      return { service, results: await retentionPass(this.ds, this.rules, input) };
    }
  }
  Object.defineProperty(PrivacyRetentionController, 'name', { value: `${service[0].toUpperCase()}${service.slice(1)}PrivacyRetentionController` });
  return PrivacyRetentionController;
}
