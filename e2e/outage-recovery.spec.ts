import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, rmSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { eventsStreamName } from '@ally/contracts';
import { startBrevoEmulator, type BrevoEmulator } from '@ally/emulators';
import { gatewayService } from '@ally/gateway';
import { identityService } from '@ally/identity';
import { ensureStreams } from '@ally/messaging';
import { notifyService } from '@ally/notify';
import { createTestEnv, httpClient, PrivateNatsServer, PrivatePostgres, waitFor, type RunningService, type TestEnv } from '@ally/testing';
import { notifyEnv } from './service-env.js';

const register = (http: ReturnType<typeof httpClient>, email: string) =>
  http.post('/v1/auth/register', { email, password: 'Olivenhain bei Valencia', firstName: 'Sofía', lastName: 'García', locale: 'en' });

describe('NATS restarted without its store (a private server)', () => {
  let nats: PrivateNatsServer;
  let env: TestEnv;
  let brevo: BrevoEmulator;
  let http: ReturnType<typeof httpClient>;
  let services: RunningService[];

  beforeAll(async () => {
    nats = new PrivateNatsServer();
    await nats.start();
    env = await createTestEnv({ natsUrl: nats.url });
    brevo = await startBrevoEmulator();
    const identity = await env.start(identityService);
    const notify = await env.start(notifyService, notifyEnv(brevo, { NOTIFY_POLL_MS: '50' }));
    const gateway = await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '10000' });
    services = [identity, notify, gateway];
    http = httpClient(gateway.url);
  }, 60_000);

  afterAll(async () => {
    await nats?.start().catch(() => undefined);
    await env?.close().catch(() => undefined);
    await brevo?.close();
    await nats?.destroy();
  });

  it('recreates the streams and consumers by itself: events accepted afterwards reach their consumers, and every service is ready again', async () => {
    expect((await register(http, 'before@example.eu')).status).toBe(201);
    await waitFor(async () => brevo.mails('before@example.eu').length > 0, 'the mail before the restart', 15_000);

    await nats.stop();
    rmSync(nats.storeDir, { recursive: true, force: true });
    mkdirSync(nats.storeDir, { recursive: true });
    await nats.start();

    await waitFor(async () => (await register(http, 'after@example.eu')).status === 201, 'a registration after the restart', 20_000);
    // Published by identity's relay into a stream it created again; read by notify's recreated durable.
    await waitFor(async () => (await env.sql(`SELECT count(*)::int AS n FROM identity.outbox WHERE sent_at IS NULL`))[0].n === 0, 'the outbox drained', 20_000);
    await waitFor(async () => brevo.mails('after@example.eu').length > 0, 'the mail after the restart', 30_000);
    expect(brevo.mails('after@example.eu')).toHaveLength(1);
    for (const s of services) {
      await waitFor(async () => (await httpClient(s.url).get('/health/ready')).status === 200, `${s.name} ready`, 15_000);
    }
  }, 90_000);
});

describe('readiness without the events stream', () => {
  let env: TestEnv;
  let gateway: RunningService;

  beforeAll(async () => {
    env = await createTestEnv();
    gateway = await env.start(gatewayService);
  });

  afterAll(async () => {
    await env?.close();
  });

  it('says not ready while the events stream is missing (NATS answers but has nowhere to keep events), and ready once it is back', async () => {
    const ready = async () => (await httpClient(gateway.url).get('/health/ready')).status;
    expect(await ready()).toBe(200);
    const nc = await env.nats();
    // Only this run's stream, on the shared server; the gateway has no relay or consumer that would recreate it.
    await (await jetstreamManager(nc)).streams.delete(eventsStreamName(env.prefix));
    await waitFor(async () => (await ready()) === 503, 'not ready', 10_000);
    const r = await httpClient(gateway.url).get('/health/ready');
    expect(JSON.stringify(r.body)).toMatch(/stream not found/i);
    await ensureStreams(nc, { prefix: env.prefix });
    await waitFor(async () => (await ready()) === 200, 'ready again', 10_000);
  }, 30_000);
});

describe('the database down (a private Postgres)', () => {
  let pg: PrivatePostgres;
  let env: TestEnv;
  let http: ReturnType<typeof httpClient>;
  let token: string;

  beforeAll(async () => {
    pg = new PrivatePostgres();
    await pg.init();
    env = await createTestEnv({ pgUrl: pg.url });
    await env.start(identityService);
    http = httpClient((await env.start(gatewayService, { AUTH_RATE_LIMIT_PER_MINUTE: '10000' })).url);
    const first = await register(http, 'before@example.eu');
    expect(first.status).toBe(201);
    token = first.body.accessToken;
  }, 90_000);

  afterAll(async () => {
    await pg?.start().catch(() => undefined);
    await env?.close().catch(() => undefined);
    await pg?.destroy();
  });

  it('answers 503 problems with Retry-After while it is away (a dependency, not a bug), and serves again once it is back', async () => {
    await pg.stop('fast');
    for (const res of [
      await register(http, 'during@example.eu'),
      await http.post('/v1/auth/login', { email: 'before@example.eu', password: 'Olivenhain bei Valencia' }),
      await http.get('/v1/me', token),
    ]) {
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    }
    await pg.start();
    await waitFor(async () => ((await register(http, 'after@example.eu')).status === 201 ? true : undefined), 'a registration once the database is back', 20_000);
  });
});
