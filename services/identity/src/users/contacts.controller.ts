import { Controller } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { DataSource } from 'typeorm';
import { IdentityRpc, parseRpcInput, type Contact, type RpcRequest } from '@ally/contracts';

/** For notify only (NATS permissions): the addresses behind a billing workspace. */
@Controller()
export class ContactsController {
  constructor(private readonly ds: DataSource) {}

  @MessagePattern(IdentityRpc.contacts.subject)
  async contacts(@Payload() req: RpcRequest): Promise<{ contacts: Contact[]; organisation?: string }> {
    const { workspace } = parseRpcInput(IdentityRpc.contacts.input, req.input);
    const rows = workspace.startsWith('private:')
      ? await this.ds.query(`SELECT id, email, first_name, locale, email_verified_at IS NOT NULL AS confirmed FROM users WHERE id = $1`, [workspace.slice('private:'.length)])
      : await this.ds.query(
          `SELECT u.id, u.email, u.first_name, u.locale, u.email_verified_at IS NOT NULL AS confirmed FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.role = 'owner' ORDER BY m.created_at`,
          [workspace],
        );
    const contacts = rows.map((r: { id: string; email: string; first_name: string; locale: 'de' | 'en'; confirmed: boolean }) => ({
      userId: r.id,
      email: r.email,
      firstName: r.first_name,
      locale: r.locale,
      addressConfirmed: r.confirmed,
    }));
    if (workspace.startsWith('private:')) return { contacts };
    // Its name tells an owner of several workspaces which one a mail is about.
    const [org]: { name: string }[] = await this.ds.query(`SELECT name FROM organizations WHERE id = $1`, [workspace]);
    return { contacts, ...(org ? { organisation: org.name } : {}) };
  }
}
