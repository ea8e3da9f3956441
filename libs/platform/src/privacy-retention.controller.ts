import { Controller, Inject, Optional, type Type } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { DataSource } from 'typeorm';
import { parseRpcInput, privacyRetentionRpc, type PrivacyRetentionReport, type RpcRequest } from '@ally/contracts';
import { retentionPass, type CategoryRetentionRule, type RetentionPassInput } from '@ally/persistence';

/** The service's CategoryRetentionRule list. */
export const CATEGORY_RETENTION_RULES = Symbol('CATEGORY_RETENTION_RULES');

/**
 * Optional: what a service does before a real run deletes its rows (a copy
 * at a processor that only the rows still name). It may delete rows itself as
 * it goes (`affected`, counted with the pass's), and name categories it could
 * not finish in the time it had (`unfinished`): the pass leaves those alone
 * this time, they are reported incomplete, and privacy's next slice asks
 * again. Its failure fails the service's part of the run.
 */
export const BEFORE_RETENTION = Symbol('BEFORE_RETENTION');
export type BeforeRetention = (input: RetentionPassInput) => Promise<{ affected: Record<string, number>; unfinished: string[] } | void>;

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
      const { stopWithinMs, ...asked } = parseRpcInput(contract.input, req.input);
      // Our own clock's deadline where privacy sent a span (its clock may differ from ours).
      const stopBy = stopWithinMs === undefined ? asked.stopBy : new Date(Date.now() + stopWithinMs).toISOString();
      // One moment for the hook and the pass: a row that comes of age between them is left to the next run.
      const input = { ...asked, stopBy, asOf: new Date().toISOString() };
      const before = input.dryRun ? undefined : ((await this.before?.(input)) ?? undefined);
      const unfinished = new Set(before?.unfinished ?? []);
      const rest = input.categories.filter((c) => !unfinished.has(c.category));
      const results = rest.length ? await retentionPass(this.ds, this.rules, { ...input, categories: rest }) : [];
      for (const c of input.categories.filter((c) => unfinished.has(c.category))) results.push({ category: c.category, affected: 0, complete: false });
      for (const r of results) r.affected += before?.affected[r.category] ?? 0;
      return { service, results };
    }
  }
  Object.defineProperty(PrivacyRetentionController, 'name', { value: `${service[0].toUpperCase()}${service.slice(1)}PrivacyRetentionController` });
  return PrivacyRetentionController;
}
