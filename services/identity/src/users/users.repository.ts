import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import type { Me, Membership } from '@ally/contracts';
import { UserEntity } from './user.entity.js';

interface MeRow {
  id: string;
  email: string;
  first_name: string;
  last_name: string;
  locale: Me['locale'];
  email_verified: boolean;
  restrict_to_eu: boolean;
  memberships: Membership[];
}

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

  /**
   * What `toMe(await findById(id))` answers, in one round trip and without the
   * ORM's query building: GET /v1/me is the hottest read. Memberships in the
   * same order as `memberships()`; undefined when there is no such user.
   */
  async findMe(userId: string): Promise<Me | undefined> {
    const rows: MeRow[] = await this.ds.query(
      `SELECT u.id, u.email, u.first_name, u.last_name, u.locale, u.email_verified_at IS NOT NULL AS email_verified, u.restrict_to_eu,
         COALESCE(
           (SELECT json_agg(json_build_object('orgId', m.org_id, 'orgName', o.name, 'role', m.role) ORDER BY m.created_at)
              FROM memberships m JOIN organizations o ON o.id = m.org_id WHERE m.user_id = u.id),
           '[]'::json) AS memberships
       FROM users u WHERE u.id = $1`,
      [userId],
    );
    const r = rows[0];
    if (!r) return undefined;
    return {
      id: r.id,
      email: r.email,
      firstName: r.first_name,
      lastName: r.last_name,
      locale: r.locale,
      emailVerified: r.email_verified,
      settings: { restrictToEu: r.restrict_to_eu },
      memberships: r.memberships,
    };
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
