import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'assistants' })
export class AssistantEntity {
  @PrimaryColumn('uuid') id!: string;
  @Column('text') workspace!: string;
  @Column('uuid', { name: 'created_by' }) createdBy!: string;
  /** An organisation's assistant: readable text; a private one's are in `sealed`. */
  @Column('text', { nullable: true }) name!: string | null;
  @Column('text', { nullable: true }) instructions!: string | null;
  /** A private assistant's `{ name, instructions }`, sealed under its creator's data key. */
  @Column('bytea', { nullable: true }) sealed!: Buffer | null;
  @Column('text', { nullable: true }) model!: string | null;
  @Column('timestamptz', { name: 'created_at' }) createdAt!: Date;
}
