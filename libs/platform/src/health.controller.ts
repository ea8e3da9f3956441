import { Controller, Get, Header, HttpException, Inject, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiExcludeController } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, HealthIndicatorService } from '@nestjs/terminus';
import { Registry } from 'prom-client';
import { Public } from './public.decorator.js';
import { READINESS_CHECKS, type ReadinessCheck } from './readiness.js';

const withTimeout = (p: Promise<void>, ms: number) => {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((_, rej) => (timer = setTimeout(() => rej(new Error(`no answer in ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
};

/** `/health/live` (the process runs), `/health/ready` (its DB and NATS answer), `/metrics`: the orchestrator's and Prometheus's, not the public API's (no OpenAPI). */
@Public()
@ApiExcludeController()
@Controller()
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    @Inject(READINESS_CHECKS) private readonly checks: ReadinessCheck[],
    private readonly registry: Registry,
  ) {}

  @Get('health/live')
  @HealthCheck()
  live() {
    return this.health.check([]);
  }

  /** 503 with the failing checks named, so the orchestrator stops routing here. */
  @Get('health/ready')
  async ready(@Res() reply: FastifyReply) {
    try {
      reply.send(await this.readiness());
    } catch (err) {
      if (!(err instanceof HttpException)) throw err;
      reply.status(err.getStatus()).send(err.getResponse());
    }
  }

  private readiness() {
    return this.health.check(
      this.checks.map((c) => async () => {
        const session = this.indicators.check(c.name);
        try {
          await withTimeout(c.check(), 2_000);
          return session.up();
        } catch (err) {
          return session.down({ error: (err as Error).message });
        }
      }),
    );
  }

  @Get('metrics')
  @Header('content-type', 'text/plain; version=0.0.4')
  metrics() {
    return this.registry.metrics();
  }
}
