import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { decodeCursor, keysetPage, type Actor, type InvoiceView, type Page } from '@ally/contracts';
import { WorkspaceAccess } from '../common/workspace-access.service.js';

const csvCell = (v: unknown) => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n;]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};
const money = (cents: string | number) => (Number(cents) / 100).toFixed(2);
/** Stripe's ids (`in_…`): what a cursor of this list may hold in place of a UUID. */
const STRIPE_ID = /^[A-Za-z0-9_]{1,100}$/;

interface InvoiceRow {
  stripe_invoice_id: string;
  number: string | null;
  status: string;
  currency: string;
  subtotal: string;
  tax: string;
  total: string;
  amount_paid: string;
  created_at: Date;
  hosted_invoice_url: string | null;
}

/** Invoices mirrored from Stripe's webhooks; kept 10 years for the accountants. */
@Injectable()
export class InvoicesService {
  constructor(
    private readonly ds: DataSource,
    private readonly access: WorkspaceAccess,
  ) {}

  /**
   * The workspace's invoices, newest first, a page at a time. The keyset is
   * the creation time to the millisecond (what a cursor holds) and Stripe's
   * invoice id, since Stripe's times are whole seconds and often shared.
   */
  async list(actor: Actor, workspace: string, limit: number, cursor?: string): Promise<Page<InvoiceView>> {
    // Who may see them first: a stranger hears 404, whatever cursor they sent.
    const key = await this.access.manage(actor, workspace);
    const after = decodeCursor(cursor, STRIPE_ID);
    const params: unknown[] = [key];
    let keyset = '';
    if (after) {
      params.push(after.at, after.id);
      keyset = ` AND (date_trunc('milliseconds', created_at), stripe_invoice_id) < ($2::timestamptz, $3)`;
    }
    const rows: InvoiceRow[] = await this.ds.query(
      // A draft (Stripe makes the renewal's an hour ahead) may still change or vanish: shown once Stripe finalised it.
      `SELECT * FROM invoices WHERE workspace = $1 AND NOT restricted AND status <> 'draft'${keyset}
        ORDER BY date_trunc('milliseconds', created_at) DESC, stripe_invoice_id DESC LIMIT ${limit + 1}`,
      params,
    );
    const { page, nextCursor } = keysetPage(rows, limit, (r) => [r.created_at, r.stripe_invoice_id]);
    return {
      data: page.map((r) => ({
        id: r.stripe_invoice_id,
        number: r.number,
        status: r.status,
        currency: r.currency,
        subtotal: Number(r.subtotal),
        tax: Number(r.tax),
        total: Number(r.total),
        amountPaid: Number(r.amount_paid),
        createdAt: r.created_at.toISOString(),
        hostedInvoiceUrl: r.hosted_invoice_url,
      })),
      nextCursor,
    };
  }

  /**
   * The bookkeeping export for one month: invoice number, date, net, tax, gross, currency, customer reference.
   * An invoice's date is when it was finalised (its draft may be of the month before: it would then be in neither
   * month's file); months and dates are German ones, as the books and the retention of invoices count them: an
   * invoice of 31 December, 23:30 UTC is one of 1 January.
   */
  async exportCsv(period: string): Promise<string> {
    const rows = await this.ds.query(
      // Net is after discounts (the subtotal is before): net + tax = gross, also on a credit.
      `SELECT number, stripe_invoice_id, to_char(dated AT TIME ZONE 'Europe/Berlin', 'YYYY-MM-DD') AS day, coalesce(net, total - tax) AS net, tax, total, currency, customer_ref
         FROM (SELECT *, coalesce(finalized_at, created_at) AS dated FROM invoices) i
        WHERE to_char(dated AT TIME ZONE 'Europe/Berlin', 'YYYY-MM') = $1 AND status IN ('paid', 'open', 'uncollectible') ORDER BY dated, number`,
      [period],
    );
    const lines = ['invoice_number;date;net;tax;gross;currency;customer_reference'];
    for (const r of rows) {
      lines.push([r.number ?? r.stripe_invoice_id, r.day, money(r.net), money(r.tax), money(r.total), String(r.currency).toUpperCase(), r.customer_ref].map(csvCell).join(';'));
    }
    return lines.join('\n') + '\n';
  }
}
