import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { BrevoClient, BrevoError } from '@getbrevo/brevo';
import type { Logger } from 'pino';
import { LOGGER, waitFromHeader } from '@ally/platform';
import { NOTIFY_CONFIG, usesEmulator, type NotifyConfig } from '../config.js';
import type { RenderedMail } from '../mails/mail-renderer.js';

export type SendOutcome =
  /** `messageId` empty: Brevo had taken this mail before (its idempotency key) and did not say under which id. */
  | { ok: true; messageId: string }
  /**
   * 429, 5xx, timeouts, network: try again later (not before `retryAfterMs`). `pause`: Brevo refuses us, not this
   * mail (its rate limit, our key): no other mail is sent meanwhile either.
   */
  | { ok: false; retryable: true; error: string; retryAfterMs?: number; pause?: boolean }
  /** Anything else Brevo refuses (400, 404, 422…): retrying would not help (401 and 403, our own key or address, wait instead). */
  | { ok: false; retryable: false; error: string };

/** Brevo's transactional email API through the official SDK; our own retry policy, not the SDK's. */
@Injectable()
export class BrevoMailer implements OnModuleInit {
  private readonly client: BrevoClient;

  constructor(
    @Inject(NOTIFY_CONFIG) private readonly config: NotifyConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.client = new BrevoClient({
      apiKey: config.BREVO_API_KEY ?? 'emulator',
      baseUrl: config.BREVO_BASE_URL,
      maxRetries: 0,
      timeoutInSeconds: 15,
    });
  }

  onModuleInit() {
    if (usesEmulator(this.config)) {
      this.logger.info({ brevo: this.config.BREVO_BASE_URL }, `${this.config.NODE_ENV}: no BREVO_API_KEY, mail goes to the Brevo emulator; nothing leaves this machine`);
    }
  }

  /**
   * Erasure (Art. 17/19): Brevo deletes its transactional logs of an address, or the one of a mail (its message
   * id, `<…@…>`). Nothing to delete is fine.
   */
  async deleteLogs(identifier: string): Promise<void> {
    try {
      await this.client.transactionalEmails.deleteAnSmtpTransactionalLog({ identifier });
    } catch (err) {
      if (!(err instanceof BrevoError && err.statusCode === 404)) throw err;
    }
  }

  /**
   * `idempotencyKey` (a UUID, the delivery's id): a retry after a timeout of a send Brevo had
   * already accepted is answered with that send's message id instead of mailing again
   * (Brevo keeps a key for 30 minutes).
   */
  async send(to: string, mail: RenderedMail, tags: string[], idempotencyKey: string, retry = false): Promise<SendOutcome> {
    try {
      const result = await this.client.transactionalEmails.sendTransacEmail({
        sender: { email: this.config.MAIL_SENDER_EMAIL, name: this.config.MAIL_SENDER_NAME },
        to: [{ email: to }],
        subject: mail.subject,
        htmlContent: mail.html,
        textContent: mail.text,
        tags,
        headers: { idempotencyKey },
      });
      return { ok: true, messageId: String(result.messageId ?? '') };
    } catch (err) {
      if (err instanceof BrevoError && typeof err.statusCode === 'number') {
        const status = err.statusCode;
        const error = `Brevo answered ${status}: ${JSON.stringify(err.body ?? '').slice(0, 300)}`;
        // A retry whose key Brevo already holds (the first attempt went, its answer was lost): sent, not refused.
        if (retry && status === 400 && (err.body as { code?: unknown } | undefined)?.code === 'duplicate_parameter') return { ok: true, messageId: '' };
        if (status === 429) return { ok: false, retryable: true, error, retryAfterMs: retryAfter(err), pause: true };
        if (status >= 500) return { ok: false, retryable: true, error, retryAfterMs: retryAfter(err) };
        // Our key or our address refused (a rotated key, Brevo's IP allow-list): ours to mend, not the mail's fault.
        // Retried (within NOTIFY_GIVE_UP_HOURS) instead of every mail meanwhile being dead and its data gone.
        if (status === 401 || status === 403) {
          this.logger.error({ status }, 'Brevo refuses our credentials or our address: check BREVO_API_KEY and Brevo\'s authorised IPs; mails wait');
          return { ok: false, retryable: true, error, pause: true };
        }
        return { ok: false, retryable: false, error };
      }
      return { ok: false, retryable: true, error: `Brevo unreachable: ${(err as Error).message}` };
    }
  }
}

/**
 * How long Brevo asks us to wait: its rate limits say when they reset in `x-sib-ratelimit-reset` (seconds; its
 * documented header), anything else may send HTTP's `Retry-After` (seconds or a date). The longer one counts.
 */
function retryAfter(err: BrevoError): number | undefined {
  const headers = err.rawResponse?.headers as Headers | Record<string, string> | undefined;
  const header = (name: string) => (headers instanceof Headers ? headers.get(name) : headers?.[name]) ?? undefined;
  const waits = [waitFromHeader(header('retry-after')), waitFromHeader(header('x-sib-ratelimit-reset'), { dates: false })].filter((ms) => ms !== undefined);
  return waits.length ? Math.max(...waits) : undefined;
}
