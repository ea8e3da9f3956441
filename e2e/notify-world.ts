import { startBrevoEmulator, type BrevoEmulator } from '@ally/emulators';
import { identityService } from '@ally/identity';
import { RpcClient } from '@ally/messaging';
import { notifyService } from '@ally/notify';
import { createTestEnv, type RunningService, type TestEnv } from '@ally/testing';
import { notifyEnv } from './service-env.js';

export interface NotifyWorld {
  env: TestEnv;
  brevo: BrevoEmulator;
  notify: RunningService;
  /** Straight to the services' RPCs, as another service would call them. */
  rpc: RpcClient;
  close(): Promise<void>;
}

/** identity and notify (its environment on top of the defaults) with the Brevo emulator, in a test world of their own. */
export async function startNotifyWorld(vars: Record<string, string>, brevoOptions: Parameters<typeof startBrevoEmulator>[0] = {}): Promise<NotifyWorld> {
  const env = await createTestEnv();
  const brevo = await startBrevoEmulator(brevoOptions);
  const rpc = new RpcClient(await env.nats(), env.prefix);
  const close = async () => {
    await rpc.close().catch(() => undefined);
    await env.close();
    await brevo.close();
  };
  try {
    await env.start(identityService);
    const notify = await env.start(notifyService, notifyEnv(brevo, vars));
    await rpc.connect();
    return { env, brevo, notify, rpc, close };
  } catch (err) {
    // A service that did not start leaves neither its database nor the emulator behind.
    await close().catch(() => undefined);
    throw err;
  }
}
