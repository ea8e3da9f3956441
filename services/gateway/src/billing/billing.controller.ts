import { Controller, Get, HttpCode, Post, Put, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { BillingRpc, billingWorkspaceInput, capInput, checkoutInput, listInvoicesInput, parseInput, usageInput, type Actor, type RequestMeta } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { CurrentActor, RequestMetaParam } from '../common/request-context.js';
import { BodySchema, ValidBody } from '../common/zod-body.js';
import { LiveAccountRequired } from '../auth/credential-scope.js';
import { CheckoutRateLimited } from '../auth/rate-limits.js';
import { QuerySchema } from '../common/query-schema.js';
import { Answers } from '../common/answers.js';

@ApiTags('billing')
@ApiBearerAuth()
@LiveAccountRequired()
@Controller('v1')
export class BillingController {
  constructor(private readonly rpc: RpcClient) {}

  @Get('billing/subscription')
  @Answers(BillingRpc.subscription)
  @QuerySchema(billingWorkspaceInput)
  subscription(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.subscription, parseInput(billingWorkspaceInput, query, 'query'), { actor, meta });
  }

  @Post('billing/checkout')
  @CheckoutRateLimited()
  @Answers(BillingRpc.checkout)
  @HttpCode(200)
  @BodySchema(checkoutInput)
  checkout(@ValidBody(checkoutInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.checkout, body, { actor, meta });
  }

  @Post('billing/portal')
  @CheckoutRateLimited()
  @Answers(BillingRpc.portal)
  @HttpCode(200)
  @BodySchema(billingWorkspaceInput)
  portal(@ValidBody(billingWorkspaceInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.portal, body, { actor, meta });
  }

  @Get('billing/usage')
  @Answers(BillingRpc.usage)
  @QuerySchema(usageInput)
  usage(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.usage, parseInput(usageInput, query, 'query'), { actor, meta });
  }

  @Get('billing/invoices')
  @Answers(BillingRpc.invoices)
  @QuerySchema(listInvoicesInput)
  invoices(@Query() query: unknown, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.invoices, parseInput(listInvoicesInput, query, 'query'), { actor, meta });
  }

  /** Monthly token caps: `{ workspace, userId?, monthlyTokens | null }`. */
  @Put('billing/caps')
  @Answers(BillingRpc.setCap)
  @BodySchema(capInput)
  caps(@ValidBody(capInput) body: any, @CurrentActor() actor: Actor, @RequestMetaParam() meta: RequestMeta) {
    return this.rpc.call(BillingRpc.setCap, body, { actor, meta });
  }
}
