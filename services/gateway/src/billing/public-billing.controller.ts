import { Controller, Get, Headers, HttpCode, Post, Query, Req } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { BillingRpc, parseInput, ProblemError, STRIPE_SIGNATURE_MAX, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { Public } from '@ally/platform';
import { RequestMetaParam } from '../common/request-context.js';
import { QuerySchema } from '../common/query-schema.js';
import { Answers } from '../common/answers.js';
import { WebhookRateLimited } from '../auth/rate-limits.js';

/** What billing answers without a login: the price list, and Stripe's webhook (its signature is the credential). */
@ApiTags('billing')
@Public()
@Controller('v1')
export class PublicBillingController {
  constructor(private readonly rpc: RpcClient) {}

  @Get('billing/plans')
  @Answers(BillingRpc.plans)
  @QuerySchema(BillingRpc.plans.input)
  plans(@Query() query: unknown, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.plans, parseInput(BillingRpc.plans.input, query, 'query'), { meta });
  }

  /** Stripe's webhook: the raw bytes travel to billing, which checks the signature. */
  @Post('webhooks/stripe')
  @WebhookRateLimited()
  @Answers(BillingRpc.stripeWebhook)
  @HttpCode(200)
  stripeWebhook(@Req() req: FastifyRequest & { rawBody?: Buffer }, @Headers('stripe-signature') signature: string | undefined, @RequestMetaParam() meta: RequestMeta) {
    if (!signature) throw new ProblemError(400, 'The Stripe-Signature header is missing');
    if (signature.length > STRIPE_SIGNATURE_MAX) {
      throw new ProblemError(400, 'The Stripe-Signature header is too long', { errors: [{ field: 'Stripe-Signature', message: `must be at most ${STRIPE_SIGNATURE_MAX} characters` }] });
    }
    if (!req.rawBody?.length) throw new ProblemError(400, 'The webhook body is missing');
    return this.rpc.call(BillingRpc.stripeWebhook, { payload: req.rawBody.toString('base64'), signature }, { meta });
  }
}
