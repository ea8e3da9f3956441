import { Inject, Injectable } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ProblemError, type Plan } from '@ally/contracts';
import { StartupError } from '@ally/platform';
import { BILLING_CONFIG, type BillingConfig } from '../config.js';

const planSchema = z.object({
  id: z.string().regex(/^[a-z0-9-]+$/),
  name: z.string(),
  currency: z.string().length(3),
  pricePerSeat: z.number().int().min(0),
  monthlyTokensPerSeat: z.number().int().min(0),
  stripePriceId: z.string().nullable(),
  selfService: z.boolean(),
});
export type PlanConfig = z.infer<typeof planSchema>;

/** Plans from PLANS_FILE; `free` applies to every workspace without a subscription. */
@Injectable()
export class PlansService {
  readonly plans: PlanConfig[];

  constructor(@Inject(BILLING_CONFIG) config: BillingConfig) {
    try {
      this.plans = z.object({ plans: z.array(planSchema).min(1) }).parse(JSON.parse(readFileSync(config.PLANS_FILE, 'utf8'))).plans;
    } catch (err) {
      throw new StartupError(`Configuration error: PLANS_FILE ${config.PLANS_FILE} is not a valid plan list (${(err as Error).message.split('\n')[0]})`);
    }
    if (!this.plans.some((p) => p.id === 'free')) throw new StartupError('Configuration error: PLANS_FILE needs a "free" plan');
    // The cluster's plans file ships with placeholders (k8s/base/billing-plans.json): Stripe would refuse every Checkout.
    const placeholder = this.plans.find((p) => p.stripePriceId?.includes('REPLACE'));
    if (config.NODE_ENV === 'production' && placeholder) {
      throw new StartupError(`Configuration error: PLANS_FILE ${config.PLANS_FILE} still has the placeholder price id of plan "${placeholder.id}": put in its Stripe price id`);
    }
  }

  list(): Plan[] {
    return this.plans.map(({ stripePriceId: _, ...p }) => p);
  }

  get(id: string): PlanConfig {
    const plan = this.plans.find((p) => p.id === id);
    if (!plan) throw new ProblemError(400, `Unknown plan "${id}"`, { errors: [{ field: 'plan', message: `must be one of ${this.plans.map((p) => p.id).join(', ')}` }] });
    return plan;
  }

  byPrice(priceId: string | undefined): PlanConfig | undefined {
    return this.plans.find((p) => p.stripePriceId && p.stripePriceId === priceId);
  }
}
