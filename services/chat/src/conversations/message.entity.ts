import { Column, Entity, PrimaryColumn } from 'typeorm';
import type { ResidencyReceipt } from '@ally/contracts';

@Entity({ name: 'messages' })
export class MessageEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('uuid', { name: 'conversation_id' }) conversationId!: string;
  @Column('uuid', { name: 'user_id' }) userId!: string;
  @Column('text') role!: 'user' | 'assistant';
  /** AES-256-GCM under the user's data key: never plaintext at rest. */
  @Column('bytea', { name: 'content_enc' }) contentEnc!: Buffer;
  @Column('text', { nullable: true }) model!: string | null;
  @Column('int', { name: 'prompt_tokens', nullable: true }) promptTokens!: number | null;
  @Column('int', { name: 'completion_tokens', nullable: true }) completionTokens!: number | null;
  @Column('jsonb', { nullable: true }) residency!: ResidencyReceipt | null;
  @Column('text') status!: 'complete' | 'aborted';
  @Column('timestamptz', { name: 'created_at' }) createdAt!: Date;
}
