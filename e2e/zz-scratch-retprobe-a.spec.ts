import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { identityService } from '@ally/identity';
import { confirmEmail, waitFor } from '@ally/testing';
import { startPlatformWorld, type PlatformWorld } from './platform-world.js';

const PASSWORD = 'Schwalben über dem Deich';


describe('retprobe', () => {
  let world: PlatformWorld;
  let token: string;
  let compId: string;

  const register = async (email: string) => {
    const r = await world.http.post('/v1/auth/register', { email, password: PASSWORD, firstName: 'Rita', lastName: 'Rahn', locale: 'en' });
    expect(r.status).toBe(201);
    await confirmEmail(world.env, r.body.user.id);
    return r.body as { user: { id: string }; accessToken: string };
  };
  const runAndWait = async (body: unknown) => {
    const r = await world.http.post('/v1/admin/privacy/retention-runs', body, token);
    expect(r.status).toBe(202);
    return waitFor(async () => {
      const g = await world.http.get(`/v1/admin/privacy/retention-runs/${r.body.id}`, token);
      return g.body.status === 'completed' || g.body.status === 'failed' ? g.body : undefined;
    }, 'run', 60_000);
  };

  beforeAll(async () => {
    world = await startPlatformWorld({ gateway: true, privacy: { RETENTION_RPC_TIMEOUT_MS: '4000' } });
    const email = `cora-${randomUUID().slice(0, 8)}@ally.example`;
    const c = await register(email);
    compId = c.user.id;
    await identityService.commands!['grant-role'](world.services.identity.app, [email, 'compliance']);
    token = (await world.http.post('/v1/auth/login', { email, password: PASSWORD })).body.accessToken;
  }, 120_000);

  afterAll(async () => {
    await world?.close();
  });

  it('policies: validation', async () => {
    const { http } = world;
    const g = await http.get('/v1/admin/privacy/retention-policies', token);
    console.log('GET', g.status, JSON.stringify(g.body).slice(0, 600));
    const bodies: unknown[] = [
      { service: 'identity', category: 'login-audit', retentionDays: 0 },
      { service: 'identity', category: 'login-audit', retentionDays: -1 },
      { service: 'identity', category: 'login-audit', retentionDays: 1.5 },
      { service: 'identity', category: 'login-audit', retentionDays: '10' },
      { service: 'identity', category: 'login-audit', retentionDays: 36501 },
      { service: 'identity', category: 'login-audit', retentionDays: 1e300 },
      { service: 'identity', category: 'nope', retentionDays: 10 },
      { service: 'chat', category: 'login-audit', retentionDays: 10 },
      { service: 'identity', category: 'account', retentionDays: 10 },
      { service: 'billing', category: 'invoices', retentionDays: 100 },
      { service: 'billing', category: 'invoices', retentionDays: null },
      { service: 'privacy', category: 'export-packages', retentionDays: 1 },
      { service: 'identity', category: 'login-audit' },
      { service: 'identity', category: 'login-audit', retentionDays: 10, basis: 'whatever' },
      { service: 'identity', category: 'login-audit', retentionDays: 10, extra: 1 },
      [{ service: 'identity', category: 'login-audit', retentionDays: 10 }, { service: 'identity', category: 'sessions', retentionDays: 0 }],
      [],
      { service: 'billing', category: 'invoices', retentionDays: 3650, basis: 'consent (Art. 6(1)(a) GDPR)' },
      { service: 'privacy', category: 'consent-records', retentionDays: 100, basis: 'consent (Art. 6(1)(a) GDPR)' },
      { service: 'identity', category: 'login-audit', retentionDays: 36500 },
    ];
    for (const b of bodies) {
      const r = await http.request('PUT', '/v1/admin/privacy/retention-policies', { body: b, token });
      console.log('PUT', JSON.stringify(b), '->', r.status, JSON.stringify(r.body).slice(0, 400));
    }
    const audit = await world.env.sql(`SELECT action, actor, details FROM privacy.audit_log WHERE action LIKE 'retention-policy%' ORDER BY seq`);
    console.log('AUDIT', JSON.stringify(audit));
    const g2 = await http.get('/v1/admin/privacy/retention-policies', token);
    console.log('GET2', JSON.stringify(g2.body.data.filter((p: any) => p.updatedAt)));
    // reset
    await http.request('PUT', '/v1/admin/privacy/retention-policies', { body: { service: 'identity', category: 'login-audit', retentionDays: 30 }, token });
    for (const b of [{ dryRun: 'yes' }, {}, { dryRun: true, categories: ['nope'] }, { dryRun: true, categories: [] }, { dryRun: true, extra: 1 }]) {
      const r = await http.post('/v1/admin/privacy/retention-runs', b, token);
      console.log('RUN', JSON.stringify(b), '->', r.status, JSON.stringify(r.body).slice(0, 400));
    }
    const nf = await http.get(`/v1/admin/privacy/retention-runs/${randomUUID()}`, token);
    console.log('GET missing run', nf.status);
  });

  it('full run across services', async () => {
    const { env, http } = world;
    const free = await register(`free-${randomUUID().slice(0, 6)}@example.eu`);
    const held = await register(`held-${randomUUID().slice(0, 6)}@example.eu`);
    const org = await http.post('/v1/orgs', { name: 'Probe GmbH' }, free.accessToken);
    expect(org.status).toBe(201);
    const orgId = org.body.id;
    const pol = await http.patch(`/v1/orgs/${orgId}/policy`, { chatRetentionDays: 10 }, free.accessToken);
    console.log('org policy', pol.status, JSON.stringify(pol.body));
    await waitFor(async () => (await env.sql(`SELECT 1 FROM chat.org_policies WHERE org_id = $1 AND chat_retention_days = 10`, [orgId])).length > 0, 'replica');
    const hold = await http.post('/v1/admin/privacy/legal-holds', { userId: held.user.id, reason: 'litigation 2026-17' }, token);
    expect(hold.status).toBe(201);

    for (const u of [free.user.id, held.user.id]) {
      // identity
      await env.sql(`INSERT INTO identity.login_audit (user_id, ip, succeeded, method, occurred_at) VALUES ($1, '198.51.100.1', true, 'password', now() - interval '40 days'), ($1, '198.51.100.2', true, 'password', now() - interval '20 days')`, [u]);
      await env.sql(
        `INSERT INTO identity.sessions (id, user_id, method, absolute_expires_at, revoked_at, created_at) VALUES (gen_random_uuid(), $1, 'probe-old', now() - interval '35 days', now() - interval '40 days', now() - interval '50 days'), (gen_random_uuid(), $1, 'probe-young', now() + interval '5 days', now() - interval '20 days', now() - interval '25 days')`,
        [u],
      );
      // chat
      for (const [ws, days, tag] of [[orgId, 15, 'org-old'], [orgId, 5, 'org-young'], ['private', 1000, 'private-old']] as const) {
        await env.sql(`INSERT INTO chat.conversations (id, user_id, workspace, updated_at, created_at) VALUES (gen_random_uuid(), $1, $2, now() - make_interval(days => $3), now() - make_interval(days => $3))`, [u, ws, days]);
        void tag;
      }
      // billing
      for (const [days, status, ws] of [[5 * 365, 'reported', orgId], [5 * 365, 'pending', orgId], [3 * 365, 'reported', orgId], [5 * 365, 'not_metered', `private:${u}`]] as const) {
        await env.sql(
          `INSERT INTO billing.ledger (message_id, workspace, user_id, model, deployment, prompt_tokens, completion_tokens, tokens, cost, period, created_at, meter_status) VALUES (gen_random_uuid(), $1, $2, 'm', 'd', 1, 1, 2, 0.1, '2021-01', now() - make_interval(days => $3), $4)`,
          [ws, u, days, status],
        );
      }
      for (const days of [11 * 365, 9 * 365]) {
        await env.sql(
          `INSERT INTO billing.invoices (stripe_invoice_id, workspace, status, currency, subtotal, tax, total, amount_paid, customer_ref, created_at) VALUES ($1, $2, 'paid', 'eur', 1, 0, 1, 1, 'c', now() - make_interval(days => $3))`,
          [`in_${randomUUID()}`, `private:${u}`, days],
        );
      }
      await env.sql(`INSERT INTO billing.subscriptions (workspace, stripe_subscription_id, plan, status, ended_at) VALUES ($1, $2, 'team', 'canceled', now() - interval '5 years')`, [`private:${u}`, `sub_${randomUUID()}`]);
      // notify
      for (const days of [40, 20]) {
        await env.sql(`INSERT INTO notify.deliveries (id, event_id, template, locale, user_id, recipient_hash, status, created_at) VALUES (gen_random_uuid(), gen_random_uuid(), 'probe', 'en', $1, $2, 'delivered', now() - make_interval(days => $3))`, [u, randomUUID(), days]);
      }
      // privacy
      for (const days of [10, 3]) {
        const rid = randomUUID();
        await env.sql(`INSERT INTO privacy.requests (id, user_id, subject_hash, type, scope, status, due_at, completed_at) VALUES ($1, $2, 'h', 'access', 'all', 'completed', now(), now() - make_interval(days => $3))`, [rid, u, days]);
        await env.sql(`INSERT INTO privacy.export_packages (request_id, user_id, sealed, size, created_at, expires_at) VALUES ($1, $2, '\\x00', 1, now() - make_interval(days => $3), now())`, [rid, u, days]);
      }
      await env.sql(`INSERT INTO privacy.requests (id, user_id, subject_hash, type, scope, status, due_at, completed_at, updated_at) VALUES (gen_random_uuid(), $1, 'h', 'erasure', 'all', 'completed', now(), now() - interval '4 years', now() - interval '4 years')`, [u]);
      await env.sql(`INSERT INTO privacy.consents (id, subject_id, purpose, granted, policy_version, source, recorded_at, expires_at) VALUES (gen_random_uuid(), $1, 'analytics', true, 'v1', 'given', now() - interval '3 years', now() - interval '1 year')`, [u]);
    }

    const snapshot = async () => {
      const q = async (sql: string) => (await env.sql<{ n: number }>(sql))[0].n;
      const out: Record<string, number> = {};
      for (const [name, sql] of Object.entries({
        la: `SELECT count(*)::int n FROM identity.login_audit WHERE ip LIKE '198.51.100.%'`,
        ses: `SELECT count(*)::int n FROM identity.sessions WHERE method LIKE 'probe-%'`,
        conv: `SELECT count(*)::int n FROM chat.conversations`,
        ledger: `SELECT count(*)::int n FROM billing.ledger`,
        inv: `SELECT count(*)::int n FROM billing.invoices`,
        subs: `SELECT count(*)::int n FROM billing.subscriptions`,
        deliv: `SELECT count(*)::int n FROM notify.deliveries WHERE template = 'probe'`,
        exp: `SELECT count(*)::int n FROM privacy.export_packages`,
        req: `SELECT count(*)::int n FROM privacy.requests`,
        cons: `SELECT count(*)::int n FROM privacy.consents`,
      })) out[name] = await q(sql);
      return out;
    };
    const before = await snapshot();
    console.log('BEFORE', JSON.stringify(before));
    const dry = await runAndWait({ dryRun: true });
    console.log('DRY', JSON.stringify(dry));
    expect(await snapshot()).toEqual(before);
    const real = await runAndWait({ dryRun: false });
    console.log('REAL', JSON.stringify(real));
    const after = await snapshot();
    console.log('AFTER', JSON.stringify(after));
    const perUser = async (u: string) => ({
      la: (await env.sql(`SELECT ip FROM identity.login_audit WHERE user_id = $1 AND ip LIKE '198.51.100.%' ORDER BY ip`, [u])).map((r: any) => r.ip),
      ses: (await env.sql(`SELECT method FROM identity.sessions WHERE user_id = $1 AND method LIKE 'probe-%' ORDER BY method`, [u])).map((r: any) => r.method),
      conv: (await env.sql(`SELECT workspace, (now()-updated_at) > interval '7 days' AS old FROM chat.conversations WHERE user_id = $1 ORDER BY updated_at`, [u])),
      ledger: (await env.sql(`SELECT meter_status, workspace LIKE 'private:%' AS priv, (now()-created_at) > interval '4 years' AS old FROM billing.ledger WHERE user_id = $1`, [u])),
      inv: (await env.sql(`SELECT (now()-created_at) > interval '10 years' AS old FROM billing.invoices WHERE workspace = $1`, [`private:${u}`])),
      subs: (await env.sql(`SELECT workspace FROM billing.subscriptions WHERE workspace = $1`, [`private:${u}`])).length,
      deliv: (await env.sql(`SELECT (now()-created_at) > interval '30 days' AS old FROM notify.deliveries WHERE user_id = $1 AND template = 'probe'`, [u])),
      exp: (await env.sql(`SELECT (now()-created_at) > interval '7 days' AS old FROM privacy.export_packages WHERE user_id = $1`, [u])),
      req: (await env.sql(`SELECT type FROM privacy.requests WHERE user_id = $1`, [u])).map((r: any) => r.type),
      cons: (await env.sql(`SELECT 1 FROM privacy.consents WHERE subject_id = $1`, [u])).length,
    });
    console.log('FREE', JSON.stringify(await perUser(free.user.id)));
    console.log('HELD', JSON.stringify(await perUser(held.user.id)));

    // release the hold, run again
    const rel = await http.delete(`/v1/admin/privacy/legal-holds/${hold.body.id}`, token);
    console.log('release', rel.status);
    const real2 = await runAndWait({ dryRun: false });
    console.log('REAL2', JSON.stringify(real2.results.filter((r: any) => r.affected > 0)), real2.status, JSON.stringify(real2.errors));
    console.log('HELD2', JSON.stringify(await perUser(held.user.id)));
    const audit = await env.sql(`SELECT action, details FROM privacy.audit_log WHERE action LIKE 'retention-run%' OR action LIKE 'legal-hold%' ORDER BY seq`);
    console.log('AUDIT', JSON.stringify(audit));
  }, 180_000);
});
