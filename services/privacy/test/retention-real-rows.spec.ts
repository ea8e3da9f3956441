import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Module, type DynamicModule } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { MigrationInterface, QueryRunner } from 'typeorm';
import { PrivacyRpc, type Actor } from '@ally/contracts';
import type { CategoryRetentionRule } from '@ally/persistence';
import { baseConfigSchema, CATEGORY_RETENTION_RULES, databaseConfigSchema, PlatformModule, privacyRetentionController, type PlatformContext, type ServiceDefinition } from '@ally/platform';
import { RpcClient } from '@ally/messaging';
import { createMessagingTables } from '@ally/messaging';
import { createTestEnv, waitFor, type TestEnv } from '@ally/testing';
import { privacyService } from '../src/privacy.service.js';
import { FakeServices } from './fake-services.js';

const compliance: Actor = { userId: randomUUID(), platformRoles: ['compliance'] };

class LogSchema1764000000000 implements MigrationInterface {
  name = 'LogSchema1764000000000';
  async up(q: QueryRunner) {
    await q.query(`CREATE TABLE deliveries (id uuid PRIMARY KEY, user_id uuid, created_at timestamptz NOT NULL)`);
    await createMessagingTables(q, 'notify');
  }
  async down() {}
}

const RULES: CategoryRetentionRule[] = [{ category: 'delivery-log', table: 'deliveries', since: 'created_at', userColumn: 'user_id' }];

@Module({})
class LogModule {
  static forRoot(ctx: PlatformContext): DynamicModule {
    return { module: LogModule, imports: [PlatformModule.forRoot(ctx)], controllers: [privacyRetentionController('notify')], providers: [{ provide: CATEGORY_RETENTION_RULES, useValue: RULES }] };
  }
}

/** A service holding one category, answering retention runs through the platform's generic handler. */
const logService: ServiceDefinition<any> = {
  name: 'notify',
  configSchema: baseConfigSchema.extend(databaseConfigSchema.shape),
  database: { schema: 'notify', entities: [], migrations: [LogSchema1764000000000] },
  module: (ctx) => LogModule.forRoot(ctx),
};

describe('retention runs against real rows of known ages', () => {
  let env: TestEnv;
  let rpc: RpcClient;
  let fakes: FakeServices;
  const held = randomUUID();
  const free = randomUUID();

  beforeAll(async () => {
    env = await createTestEnv();
    await env.start(logService);
    await env.start(privacyService, { PRIVACY_POLL_MS: '50', RETENTION_RUNNER: 'in-process' });
    rpc = new RpcClient(await env.nats(), env.prefix);
    await rpc.connect();
    // identity, as far as privacy asks it: whether a held user has an account.
    fakes = new FakeServices(await env.nats(), env.prefix).listen(['identity'], ['subject']);
    // 40 rows past 30 days (25 of `free`, 15 of `held`), 10 fresh ones.
    for (let i = 0; i < 50; i++) {
      const user = i < 25 ? free : i < 40 ? held : free;
      const ageDays = i < 40 ? 31 + i : 2;
      await env.sql(`INSERT INTO notify.deliveries (id, user_id, created_at) VALUES ($1, $2, now() - make_interval(days => $3))`, [randomUUID(), user, ageDays]);
    }
  });

  afterAll(async () => {
    fakes?.close();
    await rpc?.close();
    await env?.close();
  });

  const run = async (dryRun: boolean) => {
    const started = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun, categories: ['delivery-log'] }, { actor: compliance });
    return waitFor(async () => {
      const r = await rpc.call(PrivacyRpc.getRetentionRun, { id: started.id }, { actor: compliance });
      return r.finishedAt ? r : undefined;
    }, 'the run');
  };
  const rows = async () => (await env.sql(`SELECT count(*)::int AS n FROM notify.deliveries`))[0].n;

  it('counts in a dry run and deletes nothing', async () => {
    const report = await run(true);
    expect(report).toMatchObject({ status: 'completed', results: [{ service: 'notify', category: 'delivery-log', affected: 40 }] });
    expect(await rows()).toBe(50);
  });

  it("deletes exactly what is past its period, skipping a held user's rows until the hold is released", async () => {
    const hold = await rpc.call(PrivacyRpc.createLegalHold, { userId: held, reason: 'Beweissicherung' }, { actor: compliance });
    expect((await run(false)).results).toEqual([{ service: 'notify', category: 'delivery-log', affected: 25 }]);
    expect(await rows()).toBe(25);
    await rpc.call(PrivacyRpc.releaseLegalHold, { id: hold.id }, { actor: compliance });
    expect((await run(false)).results).toEqual([{ service: 'notify', category: 'delivery-log', affected: 15 }]);
    expect(await env.sql(`SELECT user_id FROM notify.deliveries WHERE created_at < now() - interval '30 days'`)).toEqual([]);
    expect(await rows()).toBe(10);
  });

  it('follows a period compliance changed', async () => {
    await rpc.call(PrivacyRpc.updateRetentionPolicies, { service: 'notify', category: 'delivery-log', retentionDays: 1 }, { actor: compliance });
    expect((await run(false)).results).toEqual([{ service: 'notify', category: 'delivery-log', affected: 10 }]);
  });
});
