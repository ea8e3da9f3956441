import { afterAll, beforeAll } from '@jest/globals';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, type TestEnv } from '@ally/testing';
import { identityService } from '../src/index.js';

/** identity alone (with `config` over its test settings) in a test world of its own, and an RPC client to call it; started and closed with the enclosing describe. */
export function identityWorld(config: Record<string, string> = {}): { env: TestEnv; rpc: RpcClient } {
  const world = {} as { env: TestEnv; rpc: RpcClient };
  beforeAll(async () => {
    world.env = await createTestEnv();
    await world.env.start(identityService, config);
    world.rpc = new RpcClient(await world.env.nats(), world.env.prefix);
    await world.rpc.connect();
  });
  afterAll(async () => {
    await world.rpc?.close();
    await world.env?.close();
  });
  return world;
}
