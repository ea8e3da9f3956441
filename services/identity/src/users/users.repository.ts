import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { Me, Membership } from '@ally/contracts';
import { UserEntity } from './user.entity.js';

@Injectable()
export class UsersRepository {
  constructor(private readonly ds: DataSource) {}

  private repo(em?: EntityManager) {
    return (em ?? this.ds.manager).getRepository(UserEntity);
  }

  findById(id: string, em?: EntityManager) {
    return this.repo(em).findOne({ where: { id } });
  }

  async findByEmail(email: string, em?: EntityManager) {
    return this.repo(em).createQueryBuilder('u').where('lower(u.email) = lower(:email)', { email }).getOne();
  }

  async memberships(userId: string, em?: EntityManager): Promise<Membership[]> {
    const rows = await (em ?? this.ds.manager).query(
      `SELECT m.org_id, o.name, m.role FROM memberships m JOIN organizations o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY m.created_at`,
      [userId],
    );
    return rows.map((r: { org_id: string; name: string; role: Membership['role'] }) => ({ orgId: r.org_id, orgName: r.name, role: r.role }));
  }

  async toMe(user: UserEntity, em?: EntityManager): Promise<Me> {
    return {
      id: user.id,
      email: user.email,
      firstName: user.firstName,
      lastName: user.lastName,
      locale: user.locale,
      emailVerified: user.emailVerifiedAt !== null,
      settings: { restrictToEu: user.restrictToEu },
      memberships: await this.memberships(user.id, em),
    };
  }
}
