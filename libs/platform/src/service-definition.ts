import type { DynamicModule, INestApplication } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { EntitySchema, MigrationInterface } from 'typeorm';
import type { z } from 'zod';
import type { PlatformContext } from './platform.module.js';

export type ServiceName = 'gateway' | 'identity' | 'chat' | 'billing' | 'privacy' | 'notify';

export interface ServiceDatabase {
  schema: string;
  entities: (Function | EntitySchema)[];
  migrations: (new () => MigrationInterface)[];
  /**
   * How long the outbox relay lets the rows of a busy moment gather before it publishes them (default 20 ms):
   * a service writing an event per request spends less on passes (each is four statements) with a longer one.
   */
  outboxSettleMs?: number;
  /** Fields of an event's data its outbox row forgets once the event is published (secrets only its consumer may read). */
  outboxSecrets?: readonly string[];
}

/** Everything the platform needs to run, migrate and test one service. */
export interface ServiceDefinition<C extends Record<string, unknown> = Record<string, unknown>> {
  name: ServiceName;
  /** The full environment schema (base + database + the service's own). */
  configSchema: z.ZodType<C>;
  database?: ServiceDatabase;
  /** The service's root module, given the platform context. */
  module(ctx: PlatformContext & { config: C }): DynamicModule;
  /** Which port variable serves HTTP (default HTTP_PORT). */
  portVariable?: string;
  /** HTTP-level set-up: helmet, CORS, OpenAPI, body limits. */
  configureHttp?(app: NestFastifyApplication, ctx: PlatformContext & { config: C }): Promise<void> | void;
  /** Fastify options such as the body limit. */
  fastifyOptions?(config: C): Record<string, unknown>;
  /** Extra CLI commands: `node dist/main.js <name> ...args`. */
  commands?: Record<string, (app: INestApplication, args: string[]) => Promise<string>>;
}
