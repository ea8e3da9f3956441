import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MessagePattern, Payload } from '@nestjs/microservices';
import type { NatsConnection } from '@nats-io/transport-node';
import { z } from 'zod';
import { ProblemError, rpc } from '@ally/contracts';
import { RpcClient, RpcServer } from '@ally/messaging';
import { createTestEnv, type TestEnv } from '@ally/testing';

const Echo = {
  sized: rpc<{ text: string }>()('ally.rpc.test.echo.sized', z.strictObject({ bytes: z.number().int() })),
};

@Controller()
class EchoController {
  @MessagePattern(Echo.sized.subject)
  sized(@Payload() req: { input: { bytes: number } }) {
    return { text: 'x'.repeat(req.input.bytes) };
  }
}

@Module({ controllers: [EchoController] })
class EchoModule {}

describe(RpcServer.name, () => {
  let env: TestEnv;
  let nc: NatsConnection;
  let app: INestMicroservice;
  let client: RpcClient;

  beforeAll(async () => {
    env = await createTestEnv();
    nc = await env.nats();
    app = await NestFactory.createMicroservice(EchoModule, { strategy: new RpcServer({ connection: nc, prefix: env.prefix, queue: 'test' }), logger: false });
    await app.listen();
    client = new RpcClient(nc, env.prefix, 10_000);
    await client.connect();
  });

  afterAll(async () => {
    await app?.close();
    await env?.close();
  });

  it('answers a reply that fits', async () => {
    expect((await client.call(Echo.sized, { bytes: 1000 })).text).toHaveLength(1000);
  });

  it('answers a reply over the broker\'s message limit with a 500 at once, not with the caller\'s timeout', async () => {
    const started = Date.now();
    const failed = await client.call(Echo.sized, { bytes: 2 * 1024 * 1024 }).catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(ProblemError);
    expect(failed).toMatchObject({ status: 500, message: 'The answer was too large to send' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
