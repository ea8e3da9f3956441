import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'signing_keys' })
export class SigningKeyEntity {
  @PrimaryColumn('text') kid!: string;
  @Column('text') alg!: string;
  @Column('jsonb', { name: 'public_jwk' }) publicJwk!: Record<string, unknown>;
  /** The private JWK sealed under IDENTITY_KEK (AES-256-GCM, bound to the kid). */
  @Column('bytea', { name: 'private_jwk_sealed', nullable: true }) privateJwkSealed!: Buffer | null;
  /** Only on rows from before sealing; identity seals them at start. */
  @Column('jsonb', { name: 'private_jwk', nullable: true }) privateJwk!: Record<string, unknown> | null;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @Column('timestamptz', { name: 'retired_at', nullable: true }) retiredAt!: Date | null;
}
