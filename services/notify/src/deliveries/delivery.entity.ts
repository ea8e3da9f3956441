import { Column, Entity, PrimaryColumn } from 'typeorm';

export type DeliveryStatus = 'pending' | 'sending' | 'sent' | 'delivered' | 'bounced' | 'suppressed' | 'dead';

/** One mail for one event: the delivery log. The address and variables are dropped once it is out. */
@Entity({ name: 'deliveries' })
export class DeliveryEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('uuid', { name: 'event_id' }) eventId!: string;
  @Column('text') template!: string;
  @Column('text') locale!: 'de' | 'en';
  @Column('uuid', { name: 'user_id', nullable: true }) userId!: string | null;
  /** The organisation the mail is about; null for the account's own (and mails logged before this was kept). */
  @Column('uuid', { name: 'org_id', nullable: true }) orgId!: string | null;
  /** Whom the mail is about when not its recipient (the inviter an invitation names): their erasure takes it. */
  @Column('uuid', { name: 'about_user_id', nullable: true }) aboutUserId!: string | null;
  @Column('text', { nullable: true }) recipient!: string | null;
  @Column('text', { name: 'recipient_hash' }) recipientHash!: string;
  @Column('jsonb', { nullable: true }) variables!: Record<string, unknown> | null;
  /** Sent even to a suppressed address (the user asked for it, e.g. a password reset). */
  @Column('boolean') required!: boolean;
  @Column('text') status!: DeliveryStatus;
  @Column('int') attempts!: number;
  @Column('timestamptz', { name: 'next_attempt_at' }) nextAttemptAt!: Date;
  @Column('text', { name: 'last_error', nullable: true }) lastError!: string | null;
  @Column('text', { name: 'provider_message_id', nullable: true }) providerMessageId!: string | null;
  @Column('timestamptz', { name: 'created_at' }) createdAt!: Date;
  @Column('timestamptz', { name: 'updated_at' }) updatedAt!: Date;
  @Column('timestamptz', { name: 'sent_at', nullable: true }) sentAt!: Date | null;
}
