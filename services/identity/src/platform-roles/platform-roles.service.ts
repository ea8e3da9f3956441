import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ProblemError, type PlatformRole } from '@ally/contracts';
import { SessionsService } from '../sessions/sessions.service.js';
import { UserEntity } from '../users/user.entity.js';

/**
 * Operator roles (`compliance`, `admin`): granted from the CLI only, never
 * through the API. A revocation also ends the user's sessions: their access
 * tokens name the roles they were signed with, so a new sign-in is how the
 * role goes from every one of them.
 */
@Injectable()
export class PlatformRolesService {
  constructor(
    private readonly ds: DataSource,
    private readonly sessions: SessionsService,
  ) {}

  /** The user's roles now; 401 for an account that no longer exists. */
  async current(userId: string): Promise<PlatformRole[]> {
    const user = await this.ds.getRepository(UserEntity).findOne({ where: { id: userId }, select: { id: true, platformRoles: true } });
    if (!user) throw new ProblemError(401, 'The account no longer exists');
    return user.platformRoles;
  }

  async grant(email: string, role: PlatformRole): Promise<PlatformRole[]> {
    return this.change(email, (roles) => [...new Set([...roles, role])]);
  }

  async revoke(email: string, role: PlatformRole): Promise<PlatformRole[]> {
    return this.change(email, (roles) => roles.filter((r) => r !== role), `platform role ${role} revoked`);
  }

  private async change(email: string, f: (roles: PlatformRole[]) => PlatformRole[], endSessions?: string): Promise<PlatformRole[]> {
    return this.ds.transaction(async (em) => {
      const repo = em.getRepository(UserEntity);
      const user = await repo.createQueryBuilder('u').where('lower(u.email) = lower(:email)', { email }).setLock('pessimistic_write').getOne();
      if (!user) throw new ProblemError(404, `No account with the email address ${email}`);
      const roles = f(user.platformRoles);
      await repo.update({ id: user.id }, { platformRoles: roles });
      if (endSessions && roles.length < user.platformRoles.length) await this.sessions.revokeAllForUser(em, user.id, endSessions);
      return roles;
    });
  }
}
