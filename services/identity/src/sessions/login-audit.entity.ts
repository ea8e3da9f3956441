import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/** IP and time of each sign-in attempt; kept 30 days. */
@Entity({ name: 'login_audit' })
export class LoginAuditEntity {
  @PrimaryGeneratedColumn({ type: 'bigint' }) id!: string;
  @Column('uuid', { name: 'user_id', nullable: true }) userId!: string | null;
  /** Hash of the address tried, so unknown accounts can be throttled without storing them. */
  @Column('text', { name: 'email_hash', nullable: true }) emailHash!: string | null;
  @Column('text', { nullable: true }) ip!: string | null;
  /** What failures are counted against: the IPv4 address, or an IPv6 address's /64 (`clientNetwork`). */
  @Column('text', { nullable: true }) network!: string | null;
  @Column('boolean') succeeded!: boolean;
  @Column('text') method!: string;
  @Column('timestamptz', { name: 'occurred_at', default: () => 'now()' }) occurredAt!: Date;
}
