import { Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import type { Locale, PlatformRole } from '@ally/contracts';

@Entity({ name: 'users' })
export class UserEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('text') email!: string;
  @Column('text', { name: 'first_name' }) firstName!: string;
  @Column('text', { name: 'last_name' }) lastName!: string;
  @Column('text') locale!: Locale;
  @Column('timestamptz', { name: 'email_verified_at', nullable: true }) emailVerifiedAt!: Date | null;
  @Column('text', { name: 'password_hash', nullable: true }) passwordHash!: string | null;
  /** When the password was chosen through a reset link; null: at registration, by whoever registered the address. */
  @Column('timestamptz', { name: 'password_proven_at', nullable: true }) passwordProvenAt!: Date | null;
  @Column('text', { name: 'platform_roles', array: true, default: () => "'{}'" }) platformRoles!: PlatformRole[];
  @Column('boolean', { name: 'restrict_to_eu', default: true }) restrictToEu!: boolean;
  /** Objection to the login audit upheld (Art. 21): sign-ins are not recorded against this user. */
  @Column('boolean', { name: 'login_audit_objected', default: false }) loginAuditObjected!: boolean;
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz' }) updatedAt!: Date;
}

/**
 * Whether what the account holds may have been set up by someone other than the address's owner: nobody proved
 * control of the address, or the password in place is the one chosen at registration (a squatter's, possibly,
 * also after the owner clicked the confirmation link the squatter's registration sent them).
 */
export const setUpWithoutProof = (user: Pick<UserEntity, 'emailVerifiedAt' | 'passwordHash' | 'passwordProvenAt'>): boolean =>
  !user.emailVerifiedAt || (user.passwordHash !== null && user.passwordProvenAt === null);
