import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'suppressions' })
export class SuppressionEntity {
  @PrimaryColumn('text', { name: 'recipient_hash' }) recipientHash!: string;
  @Column('text') reason!: string;
  @Column('timestamptz', { name: 'created_at' }) createdAt!: Date;
}
