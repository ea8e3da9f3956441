export interface Plan {
  id: string;
  name: string;
  currency: string;
  /** Per seat and month, in the currency's minor unit (cents). */
  pricePerSeat: number;
  /** Tokens per seat and month (the workspace's quota is this times its seats). */
  monthlyTokensPerSeat: number;
  selfService: boolean;
}

export interface SubscriptionView {
  workspace: string;
  plan: string;
  status: string;
  currentPeriodEnd: string | null;
  seats: number;
  cancelAtPeriodEnd: boolean;
}

export interface UsageView {
  period: string;
  tokensUsed: number;
  /** The quota of that month (null for a month before quotas were recorded, or one without any record of the workspace). */
  tokenQuota: number | null;
  byModel: { model: string; tokens: number; cost: number }[];
}

export interface InvoiceView {
  id: string;
  number: string | null;
  status: string;
  currency: string;
  subtotal: number;
  tax: number;
  total: number;
  amountPaid: number;
  createdAt: string;
  hostedInvoiceUrl: string | null;
}

export interface QuotaAnswer {
  allowed: boolean;
  /** Which limit was hit, when not allowed. */
  reason?: string;
  /** Tokens left under the tightest limit (quota, workspace cap, the member's cap), when allowed. */
  remaining?: number;
}
