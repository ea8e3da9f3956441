import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { forgetSubjectInOutbox, Outbox } from '@ally/messaging';
import { createTestEnv, type TestEnv } from '@ally/testing';
import { openTestSchema, TestEvents } from './support.js';

const SCHEMA = 'forget';

/** A subject's erasure in an outbox (no relay runs here: what is unpublished stays so). */
describe(forgetSubjectInOutbox.name, () => {
  let env: TestEnv;
  let dataSource: DataSource;
  const outbox = new Outbox('test', TestEvents);

  beforeAll(async () => {
    env = await createTestEnv();
    ({ dataSource } = await openTestSchema(env, SCHEMA));
  });

  afterAll(async () => {
    await dataSource?.destroy();
    await env?.close();
  });

  const rows = (userId: string) => env.sql<{ type: string; published: boolean }>(`SELECT type, sent_at IS NOT NULL AS published FROM ${SCHEMA}.outbox WHERE strpos(payload::text, $1) > 0 ORDER BY type`, [userId]);

  it("drops the subject's unpublished events of the types named, keeps their others in place, and deletes their published ones; another subject's stay", async () => {
    const [subject, other] = [randomUUID(), randomUUID()];
    await dataSource.transaction(async (em) => {
      for (const userId of [subject, other]) {
        await outbox.append(em, 'test.thing.happened', { n: 1 }, { subject: { userId } });
        await outbox.append(em, 'test.other.happened', { n: 2 }, { subject: { userId } });
        const published = await outbox.append(em, 'test.load.happened', { n: 3 }, { subject: { userId } });
        await em.query(`UPDATE outbox SET sent_at = now() WHERE id = $1`, [published.id]);
      }
    });

    await forgetSubjectInOutbox(dataSource, subject, { unpublished: 'drop', onlyTypes: ['test.thing.happened'] });
    expect(await rows(subject)).toEqual([{ type: 'test.other.happened', published: false }]);
    expect(await rows(other)).toEqual([
      { type: 'test.load.happened', published: true },
      { type: 'test.other.happened', published: false },
      { type: 'test.thing.happened', published: false },
    ]);

    // Without a list of types, every unpublished event of theirs goes.
    await forgetSubjectInOutbox(dataSource, other, { unpublished: 'drop' });
    expect(await rows(other)).toEqual([]);
  });
});
