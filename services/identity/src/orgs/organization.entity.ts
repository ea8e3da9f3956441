import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'organizations' })
export class OrganizationEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('text') name!: string;
  @Column('boolean', { name: 'eu_only', default: true }) euOnly!: boolean;
  @Column('text', { name: 'allowed_models', array: true, nullable: true }) allowedModels!: string[] | null;
  @Column('int', { name: 'chat_retention_days', nullable: true }) chatRetentionDays!: number | null;
  @Column('text', { name: 'blocked_terms', array: true, default: () => "'{}'" }) blockedTerms!: string[];
  @CreateDateColumn({ name: 'created_at', type: 'timestamptz' }) createdAt!: Date;
}
