import { Controller, Inject } from '@nestjs/common';
import { MessagePattern, Payload } from '@nestjs/microservices';
import { listPage, NotifyRpc, parseRpcInput, ProblemError, type DevMail, type Page, type RpcRequest } from '@ally/contracts';
import { NOTIFY_CONFIG, usesEmulator, type NotifyConfig } from '../config.js';

interface EmulatedMail {
  messageId: string;
  receivedAt: string;
  to: { email: string }[];
  subject: string;
  textContent?: string;
  links: string[];
}

/**
 * Development only: what reached the inboxes through the Brevo emulator, newest first, with links
 * and tokens, so a new user can follow a verification link without a mail
 * server. In production (or with a real Brevo key) it does not exist.
 */
@Controller()
export class DevMailboxController {
  constructor(@Inject(NOTIFY_CONFIG) private readonly config: NotifyConfig) {}

  @MessagePattern(NotifyRpc.devMailbox.subject)
  async list(@Payload() req: RpcRequest): Promise<Page<DevMail>> {
    if (this.config.NODE_ENV === 'production' || !usesEmulator(this.config)) throw new ProblemError(404, 'Not found');
    const { to, ...page } = parseRpcInput(NotifyRpc.devMailbox.input, req.input, 'query');
    const url = new URL('../__emulator/emails', this.config.BREVO_BASE_URL.replace(/\/?$/, '/'));
    if (to) url.searchParams.set('to', to);
    // An inbox: the last mail an erasure sends stays readable after Brevo's logs of the address are deleted.
    url.searchParams.set('inbox', 'true');
    const res = await fetch(url).catch(() => null);
    if (!res?.ok) throw new ProblemError(503, `The Brevo emulator at ${this.config.BREVO_BASE_URL} is not answering`);
    const { data } = (await res.json()) as { data: EmulatedMail[] };
    const mails = data.map(
      (m): DevMail => ({
        messageId: m.messageId,
        receivedAt: m.receivedAt,
        to: m.to.map((t) => t.email),
        subject: m.subject,
        textContent: m.textContent,
        links: m.links,
        // A link text in a mail may not parse (an organisation named `http://[x`): only ours carry a token.
        tokens: m.links.map((l) => (URL.canParse(l) ? new URL(l).searchParams.get('token') : null)).filter((t): t is string => !!t),
      }),
    );
    return listPage(mails, (m) => m.messageId, page);
  }
}
