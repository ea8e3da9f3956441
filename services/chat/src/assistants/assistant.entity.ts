import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'assistants' })
export class AssistantEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('text') workspace!: string;
  @Column('uuid', { name: 'created_by' }) createdBy!: string;
  @Column('text') name!: string;
  @Column('text') instructions!: string;
  @Column('text', { nullable: true }) model!: string | null;
  @Column('timestamptz', { name: 'created_at' }) createdAt!: Date;
}
