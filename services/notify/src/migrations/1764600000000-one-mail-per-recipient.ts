import type { MigrationInterface, QueryRunner } from 'typeorm';

/** An event may mail several people (an organisation's owners): one delivery per event, template and recipient. */
export class OneMailPerRecipient1764600000000 implements MigrationInterface {
  name = 'OneMailPerRecipient1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_template_key`);
    await q.query(`ALTER TABLE deliveries ADD CONSTRAINT deliveries_event_template_recipient_key UNIQUE (event_id, template, recipient_hash)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_template_recipient_key`);
    await q.query(`ALTER TABLE deliveries ADD CONSTRAINT deliveries_event_id_template_key UNIQUE (event_id, template)`);
  }
}
