import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

export type OneTimeTokenPurpose = 'verify_email' | 'password_reset' | 'email_change';

@Entity({ name: 'one_time_tokens' })
export class OneTimeTokenEntity {
  @PrimaryColumn('text', { name: 'token_hash' }) tokenHash!: string;
  @Column('uuid', { name: 'user_id' }) userId!: string;
  @Column('text') purpose!: OneTimeTokenPurpose;
  @Column('timestamptz', { name: 'expires_at' }) expiresAt!: Date;
  @Column('timestamptz', { name: 'used_at', nullable: true }) usedAt!: Date | null;
  /** The address an `email_change` token confirms. */
  @Column('text', { name: 'new_email', nullable: true }) newEmail!: string | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
