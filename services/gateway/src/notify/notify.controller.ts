import { Body, Controller, Get, HttpCode, Inject, Post, Query, Req } from '@nestjs/common';
import { ApiExcludeEndpoint, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { devMailboxInput, NotifyRpc, parseInput, ProblemError, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { Public } from '@ally/platform';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config.js';
import { RequestMetaParam } from '../common/request-context.js';
import { QuerySchema } from '../common/query-schema.js';
import { Answers } from '../common/answers.js';
import { WebhookRateLimited } from '../auth/rate-limits.js';

@ApiTags('notify')
@Controller()
@Public()
export class NotifyController {
  constructor(
    private readonly rpc: RpcClient,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {}

  /**
   * Brevo's webhook: bounces, complaints, unsubscribes. notify checks the shared secret. Brevo asks again only
   * after a timeout or a 429 (any other failure drops the events), so notify not answering or failing for its own
   * reasons (its database away, say) is a 429 here.
   */
  @Post('v1/webhooks/brevo')
  @WebhookRateLimited()
  @Answers(NotifyRpc.brevoWebhook)
  @HttpCode(200)
  async brevoWebhook(@Req() req: FastifyRequest, @Body() payload: unknown, @RequestMetaParam() meta: RequestMeta) {
    const auth = req.headers.authorization;
    const bearer = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const secret = bearer || String((req.query as Record<string, unknown>)?.token ?? '');
    // Named here in the caller's terms: notify would name its RPC field `payload`.
    if (payload === undefined) throw new ProblemError(400, 'The request body is required', { errors: [{ field: '(body)', message: 'is required' }] });
    try {
      return await this.rpc.call(NotifyRpc.brevoWebhook, { secret: secret.slice(0, 512), payload }, { meta });
    } catch (err) {
      if (!(err instanceof ProblemError) || err.status < 500) throw err;
      throw new ProblemError(429, `The events could not be taken now (${err.message}); send them again`, { retryAfter: 60 });
    }
  }

  /** Development only: the mails the Brevo emulator took, newest first, with their links and tokens. */
  @Get('v1/dev/mailbox')
  @Answers(NotifyRpc.devMailbox)
  @QuerySchema(devMailboxInput)
  @ApiExcludeEndpoint()
  devMailbox(@Query() query: unknown, @RequestMetaParam() meta: RequestMeta) {
    if (this.config.NODE_ENV === 'production') throw new ProblemError(404, 'Not found');
    // Checked here as everywhere: `?to[]=` or `?TO=` is a 400, not every mail unfiltered.
    return this.rpc.call(NotifyRpc.devMailbox, parseInput(devMailboxInput, query, 'query'), { meta });
  }
}
