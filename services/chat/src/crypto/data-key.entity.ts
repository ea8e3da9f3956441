import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'data_keys' })
export class DataKeyEntity {
  @PrimaryColumn('uuid', { name: 'user_id' }) userId!: string;
  @Column('bytea') wrapped!: Buffer;
  @Column('timestamptz', { name: 'created_at' }) createdAt!: Date;
}
