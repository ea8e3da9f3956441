import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ProblemError, type PlatformRole } from '@ally/contracts';
import { UserEntity } from '../users/user.entity.js';

/** Operator roles (`compliance`, `admin`): granted from the CLI only, never through the API. */
@Injectable()
export class PlatformRolesService {
  constructor(private readonly ds: DataSource) {}

  async grant(email: string, role: PlatformRole): Promise<PlatformRole[]> {
    return this.change(email, (roles) => [...new Set([...roles, role])]);
  }

  async revoke(email: string, role: PlatformRole): Promise<PlatformRole[]> {
    return this.change(email, (roles) => roles.filter((r) => r !== role));
  }

  private async change(email: string, f: (roles: PlatformRole[]) => PlatformRole[]): Promise<PlatformRole[]> {
    const repo = this.ds.getRepository(UserEntity);
    const user = await repo.createQueryBuilder('u').where('lower(u.email) = lower(:email)', { email }).getOne();
    if (!user) throw new ProblemError(404, `No account with the email address ${email}`);
    const roles = f(user.platformRoles);
    await repo.update({ id: user.id }, { platformRoles: roles });
    return roles;
  }
}
