import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import type { Actor, InvoiceView } from '@ally/contracts';
import { WorkspaceAccess } from '../common/workspace-access.service.js';

const csvCell = (v: unknown) => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n;]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};
const money = (cents: string | number) => (Number(cents) / 100).toFixed(2);

/** Invoices mirrored from Stripe's webhooks; kept 10 years for the accountants. */
@Injectable()
export class InvoicesService {
  constructor(
    private readonly ds: DataSource,
    private readonly access: WorkspaceAccess,
  ) {}

  async list(actor: Actor, workspace: string): Promise<{ data: InvoiceView[]; nextCursor: null }> {
    const key = await this.access.manage(actor, workspace);
    const rows = await this.ds.query(`SELECT * FROM invoices WHERE workspace = $1 AND NOT restricted ORDER BY created_at DESC`, [key]);
    return {
      data: rows.map((r: any) => ({
        id: r.stripe_invoice_id,
        number: r.number,
        status: r.status,
        currency: r.currency,
        subtotal: Number(r.subtotal),
        tax: Number(r.tax),
        total: Number(r.total),
        amountPaid: Number(r.amount_paid),
        createdAt: new Date(r.created_at).toISOString(),
        hostedInvoiceUrl: r.hosted_invoice_url,
      })),
      nextCursor: null,
    };
  }

  /** The bookkeeping export for one month: invoice number, date, net, tax, gross, currency, customer reference. */
  async exportCsv(period: string): Promise<string> {
    const rows = await this.ds.query(
      `SELECT number, stripe_invoice_id, created_at, subtotal, tax, total, currency, customer_ref FROM invoices
        WHERE to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM') = $1 AND status IN ('paid', 'open', 'uncollectible') ORDER BY created_at, number`,
      [period],
    );
    const lines = ['invoice_number;date;net;tax;gross;currency;customer_reference'];
    for (const r of rows) {
      lines.push([r.number ?? r.stripe_invoice_id, new Date(r.created_at).toISOString().slice(0, 10), money(r.subtotal), money(r.tax), money(r.total), String(r.currency).toUpperCase(), r.customer_ref].map(csvCell).join(';'));
    }
    return lines.join('\n') + '\n';
  }
}
