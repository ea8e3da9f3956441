import { Controller, Get, Headers, HttpCode, Post, Put, Query, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { BillingRpc, billingWorkspaceInput, capInput, checkoutInput, listInvoicesInput, parseInput, ProblemError, usageInput, type Actor, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { Public } from '@ally/platform';
import { CurrentActor, RequestMetaParam } from '../common/request-context.js';
import { BodySchema, ValidBody } from '../common/zod-body.js';
import { LiveAccountRequired } from '../auth/credential-scope.js';

@ApiTags('billing')
@ApiBearerAuth()
@LiveAccountRequired()
@Controller('v1')
export class BillingController {
  constructor(private readonly rpc: RpcClient) {}

  @Get('billing/plans')
  @Public()
  plans(@RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.plans, {}, { meta });
  }

  @Get('billing/subscription')
  subscription(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.subscription, parseInput(billingWorkspaceInput, query, 'query'), { actor, meta });
  }

  @Post('billing/checkout')
  @HttpCode(200)
  @BodySchema(checkoutInput)
  checkout(@ValidBody(checkoutInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.checkout, body, { actor, meta });
  }

  @Post('billing/portal')
  @HttpCode(200)
  @BodySchema(billingWorkspaceInput)
  portal(@ValidBody(billingWorkspaceInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.portal, body, { actor, meta });
  }

  @Get('billing/usage')
  usage(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.usage, parseInput(usageInput, query, 'query'), { actor, meta });
  }

  @Get('billing/invoices')
  invoices(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.invoices, parseInput(listInvoicesInput, query, 'query'), { actor, meta });
  }

  /** Monthly token caps: `{ workspace, userId?, monthlyTokens | null }`. */
  @Put('billing/caps')
  @BodySchema(capInput)
  caps(@ValidBody(capInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.setCap, body, { actor, meta });
  }

  /** Stripe's webhook: the raw bytes travel to billing, which checks the signature. */
  @Post('webhooks/stripe')
  @Public()
  @HttpCode(200)
  stripeWebhook(@Req() req: FastifyRequest & { rawBody?: Buffer }, @Headers('stripe-signature') signature: string | undefined, @RequestMetaParam() meta: RequestMeta) {
    if (!signature) throw new ProblemError(400, 'The Stripe-Signature header is missing');
    if (!req.rawBody?.length) throw new ProblemError(400, 'The webhook body is missing');
    return this.rpc.call(BillingRpc.stripeWebhook, { payload: req.rawBody.toString('base64'), signature }, { meta });
  }
}
