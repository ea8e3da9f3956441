import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ERASED_USER, NIL_UUID, pagedExport, type ExportList, type PrivacyErasure, type PrivacyErasureProcessorReport, type PrivacyExport } from '@ally/contracts';
import { forgetSubjectInOutbox } from '@ally/messaging';
import { lockSubject } from '@ally/persistence';
import { StripeClient } from '../stripe/stripe.client.js';
import { markErased, markWorkspaceErased, Pseudonyms } from '../common/erased-subjects.js';
import { workspaceKey } from '../common/workspace-key.js';


/**
 * billing's part of data-subject requests. Erasure deletes what no law
 * requires (caps, the private workspace's customer link), pseudonymises the
 * usage ledger, and restricts invoices: kept 10 years for tax law, used for
 * nothing else, the person replaced by a pseudonym.
 */
@Injectable()
export class BillingPrivacyService {
  constructor(
    private readonly ds: DataSource,
    private readonly stripe: StripeClient,
    private readonly pseudonyms: Pseudonyms,
  ) {}

  /**
   * One page of the subject's export: the contract and invoices (a few rows a year) on the first pages, then
   * the usage ledger (a row per answer) read by keyset, so no page rebuilds the whole ledger.
   */
  async export(userId: string, scope: string, page: number | string = 0): Promise<PrivacyExport> {
    const workspaces = this.workspaces(userId, scope);
    const ledger: ExportList = {
      category: 'usage-ledger',
      read: async (after, limit) => {
        const rows: { place_at: string; place_id: string }[] = await this.ds.query(
          `SELECT message_id, workspace, model, prompt_tokens, completion_tokens, cost::float AS cost, created_at, created_at::text AS place_at, message_id::text AS place_id
             FROM ledger WHERE user_id = $1 AND ($2::text[] IS NULL OR workspace = ANY($2)) AND (created_at, message_id) > ($3::timestamptz, $4::uuid)
            ORDER BY created_at, message_id LIMIT $5`,
          [userId, workspaces, after?.[0] ?? '-infinity', after?.[1] ?? NIL_UUID, limit],
        );
        return rows.map(({ place_at, place_id, ...value }) => ({ value, place: [place_at, place_id] }));
      },
    };
    return pagedExport('billing', page, () => this.contract(userId, workspaces), [ledger]);
  }

  private async contract(userId: string, workspaces: string[] | null): Promise<Record<string, unknown>> {
    const own = workspaceKey('private', userId);
    // The private workspace's contract is the subject's; an organisation's is the organisation's. A scope keeps to its workspace.
    const ownInScope = !workspaces || workspaces.includes(own);
    const subscriptions = ownInScope
      ? await this.ds.query(`SELECT workspace, plan, status, seats, stripe_subscription_id, stripe_item_id, current_period_end, cancel_at_period_end, ended_at FROM subscriptions WHERE workspace = $1`, [own])
      : [];
    // The private workspace's customer, and an organisation's that they set up (its row names them as its creator).
    const rows: { workspace: string; stripe_customer_id: string; created_at: Date }[] = await this.ds.query(
      `SELECT workspace, stripe_customer_id, created_at FROM customers WHERE ($2 AND workspace = $1) OR (created_by = $3 AND workspace <> $1 AND ($4::text[] IS NULL OR workspace = ANY($4))) ORDER BY created_at, workspace`,
      [own, ownInScope, userId, workspaces],
    );
    // What Stripe holds as processor of the private workspace's customer (the subject's own): Checkout's contact and tax IDs.
    // An organisation's customer is the organisation's, whoever set it up.
    const customers = await Promise.all(rows.map(async (c) => (c.workspace === own ? { ...c, heldByStripe: await this.stripe.customerDetails(c.stripe_customer_id) } : c)));
    const invoices = ownInScope
      ? await this.ds.query(
          `SELECT stripe_invoice_id, number, status, currency, subtotal, tax, total, amount_paid, customer_ref, hosted_invoice_url, created_at FROM invoices WHERE workspace = $1 ORDER BY created_at, stripe_invoice_id`,
          [own],
        )
      : [];
    const caps = await this.ds.query(
      `SELECT workspace, monthly_tokens FROM caps WHERE (user_id = $1 OR workspace = $2) AND ($3::text[] IS NULL OR workspace = ANY($3)) ORDER BY workspace, user_id`,
      [userId, own, workspaces],
    );
    return { contract: { customers, subscriptions, caps }, invoices };
  }

  async erase(userId: string, scope: string): Promise<PrivacyErasure & PrivacyErasureProcessorReport> {
    const workspaces = this.workspaces(userId, scope);
    const own = workspaceKey('private', userId);
    const alias = this.pseudonyms.of(userId);
    // Also under the pseudonym: a retry after Stripe failed finds the row already renamed, and tells Stripe again;
    // so does a later erasure, whose own customer (a Checkout since an earlier one) joins those there.
    let customers: { stripe_customer_id: string }[] = [];
    const erased = await this.ds.transaction(async (em) => {
      // A checkout of theirs writing its customer now is waited for (and one after this sees the mark): none is missed.
      await lockSubject(em, userId, 'exclusive');
      if (scope === 'all' || scope === 'private') customers = await em.query(`SELECT stripe_customer_id FROM customers WHERE workspace IN ($1, $2)`, [own, alias]);
      // Their caps as a member, and their private workspace's own cap (kept under the workspace, for no member).
      const [, caps] = await em.query(
        `DELETE FROM caps WHERE (user_id = $1 AND ($2::text[] IS NULL OR workspace = ANY($2))) OR ($3 AND workspace = $4)`,
        [userId, workspaces, scope === 'all' || scope === 'private', own],
      );
      // The ledger is booking data: the amounts stay, the person goes.
      const [, ledger] = await em.query(
        `UPDATE ledger SET user_id = '${ERASED_USER}', workspace = CASE WHEN workspace = $3 THEN $4 ELSE workspace END
          WHERE user_id = $1 AND ($2::text[] IS NULL OR workspace = ANY($2))`,
        [userId, workspaces, own, alias],
      );
      let invoices = 0;
      if (scope === 'all' || scope === 'private') {
        // Kept for the books (10 years), restricted; the link to Stripe's page, which shows the person, goes.
        const [, n] = await em.query(`UPDATE invoices SET restricted = true, customer_ref = $2, workspace = $2, hosted_invoice_url = NULL WHERE workspace = $1`, [own, alias]);
        invoices = Number(n);
        // The pseudonym may already hold an earlier erasure's rows: those tables are keyed by Stripe's ids.
        await em.query(`UPDATE subscriptions SET workspace = $2 WHERE workspace = $1`, [own, alias]);
        await em.query(`UPDATE customers SET workspace = $2, created_by = '${ERASED_USER}' WHERE workspace = $1`, [own, alias]);
      }
      // An organisation's customer they set up names them as its creator: unlinked with that workspace's (or the whole account's) erasure.
      await em.query(`UPDATE customers SET created_by = '${ERASED_USER}' WHERE created_by = $1 AND ($2::text[] IS NULL OR workspace = ANY($2))`, [userId, workspaces]);
      if (scope === 'all' || scope === 'private') {
        // Alerts of their private workspace go, and its mails not yet out (to the subject alone) are not sent after all
        // (dropped before the published ones go, so one the relay sends meanwhile goes too).
        await em.query(`DELETE FROM quota_alerts WHERE workspace = $1`, [own]);
        await forgetSubjectInOutbox(em, userId, { unpublished: 'drop' });
      } else {
        await forgetSubjectInOutbox(em, userId);
      }
      if (scope === 'all') await markErased(em, alias);
      else await markWorkspaceErased(em, alias, scope);
      return { service: 'billing', affected: { contract: Number(caps), 'usage-ledger': Number(ledger), invoices } };
    });
    // Art. 17/19: Stripe deletes the private workspace's customer (it keeps invoices for tax law itself).
    // After our rows are pseudonymised, so the webhooks this triggers find them under their new name.
    const processorsNotified: string[] = [];
    for (const c of customers) await this.stripe.deleteCustomer(c.stripe_customer_id);
    if (customers.length) processorsNotified.push('stripe');
    return { ...erased, processorsNotified };
  }

  private workspaces(userId: string, scope: string): string[] | null {
    if (scope === 'all') return null;
    return [scope === 'private' ? workspaceKey('private', userId) : scope];
  }
}
