import { Global, Module, type DynamicModule, type Provider } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { TerminusModule } from '@nestjs/terminus';
import { DataSource } from 'typeorm';
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { NatsConnection } from '@nats-io/transport-node';
import { eventsStreamCheck, RpcClient, stalledConsumers } from '@ally/messaging';
import { EventConsumers } from './event-consumers.service.js';
import { HealthController } from './health.controller.js';
import { ProblemFilter } from './problem.filter.js';
import { READINESS_CHECKS, type ReadinessCheck } from './readiness.js';
import { CONFIG, LOGGER, NATS } from './tokens.js';

export interface PlatformContext {
  config: Record<string, unknown>;
  /** The raw environment, for values named by other config (e.g. a catalog's key variables). */
  env: Record<string, string | undefined>;
  logger: Logger;
  nats: NatsConnection;
  rpc: RpcClient;
  registry: Registry;
  dataSource?: DataSource;
}

/** Hands every service its config, logger, NATS, RPC client, metrics, DB, health endpoints and error filter. */
@Global()
@Module({})
export class PlatformModule {
  static forRoot(ctx: PlatformContext): DynamicModule {
    const streamExists = eventsStreamCheck(ctx.nats, String(ctx.config.NATS_SUBJECT_PREFIX ?? ''));
    const checks: ReadinessCheck[] = [
      {
        name: 'nats',
        check: async () => {
          if (ctx.nats.isClosed()) throw new Error('connection closed');
          await ctx.nats.flush();
          // A server that came back without its store answers, but has nowhere to keep events.
          await streamExists();
        },
      },
    ];
    if (ctx.dataSource) {
      const ds = ctx.dataSource;
      checks.push({ name: 'database', check: async () => void (await ds.query('SELECT 1')) });
      checks.push({
        name: 'event consumers',
        check: async () => {
          const stalled = await stalledConsumers(ctx.registry);
          if (stalled.length) throw new Error(`not receiving events (being recreated): ${stalled.join(', ')}`);
        },
      });
    }
    const providers: Provider[] = [
      { provide: CONFIG, useValue: ctx.config },
      { provide: LOGGER, useValue: ctx.logger },
      { provide: NATS, useValue: ctx.nats },
      { provide: RpcClient, useValue: ctx.rpc },
      { provide: Registry, useValue: ctx.registry },
      { provide: READINESS_CHECKS, useValue: checks },
      { provide: APP_FILTER, useFactory: () => new ProblemFilter(ctx.logger) },
      ...(ctx.dataSource ? [{ provide: DataSource, useValue: ctx.dataSource }, EventConsumers] : []),
    ];
    return {
      module: PlatformModule,
      imports: [TerminusModule.forRoot({ logger: false })],
      controllers: [HealthController],
      providers,
      exports: providers.filter((p) => typeof p === 'function' || (p as { provide: unknown }).provide !== APP_FILTER),
    };
  }
}
