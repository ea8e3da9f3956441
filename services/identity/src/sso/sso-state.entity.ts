import { Column, Entity, PrimaryColumn } from 'typeorm';

/** PKCE verifier and nonce between start and callback; the gateway stays stateless. */
@Entity({ name: 'sso_states' })
export class SsoStateEntity {
  @PrimaryColumn('text') state!: string;
  @Column('text') provider!: string;
  @Column('text', { name: 'code_verifier' }) codeVerifier!: string;
  @Column('text') nonce!: string;
  @Column('timestamptz', { name: 'expires_at' }) expiresAt!: Date;
}
