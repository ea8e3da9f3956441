import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'conversations' })
export class ConversationEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('uuid', { name: 'user_id' }) userId!: string;
  /** `private` or an organisation id. */
  @Column('text') workspace!: string;
  @Column('bytea', { name: 'title_enc', nullable: true }) titleEnc!: Buffer | null;
  @Column('uuid', { name: 'assistant_id', nullable: true }) assistantId!: string | null;
  @Column('timestamptz', { name: 'created_at' }) createdAt!: Date;
  @Column('timestamptz', { name: 'updated_at' }) updatedAt!: Date;
}
