import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { EntityManager } from 'typeorm';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import * as contracts from '@ally/contracts';
import { BillingRpc, ChatRpc, createEnvelope, eventSubject, IdentityRpc, NotifyRpc, privacyRpcs, serviceInboxPrefix, type EventEnvelope, type RpcContract } from '@ally/contracts';
import { deadLetterStreamName, ensureStreams, EventConsumer, RpcClient, RpcServer, subjectFilter } from '@ally/messaging';
import { PrivateNatsServer, waitFor } from '@ally/testing';
import { Logger } from '@nestjs/common';
import {
  ADMIN_USER,
  DLQ_STREAM,
  EVENTS_STREAM,
  inboxPrefix,
  RELEASE_BEFORE_RUNS,
  mayPublish,
  passwordVariable,
  renderAuthorization,
  SERVICES,
  TOPOLOGY,
  type Service,
} from '../tools/deploy/nats-permissions.js';

/**
 * Starts a private nats-server (never the shared one on 4222) with the
 * committed k8s/base/nats/authorization.conf, each user's password in the
 * server's environment as in Kubernetes, and proves for every service that it
 * can do its job and nothing that belongs to another service.
 */

const root = process.cwd();
const AUTH_FILE = join(root, 'k8s/base/nats/authorization.conf');

/** Concrete RPC subjects each service must be able to call (from its code and ARCHITECTURE.md). */
const MUST_CALL: Record<Service, string[]> = {
  gateway: [
    IdentityRpc.login.subject,
    IdentityRpc.getMe.subject,
    IdentityRpc.jwks.subject,
    IdentityRpc.verifyApiKey.subject,
    ChatRpc.streamMessage.subject,
    ChatRpc.completions.subject,
    NotifyRpc.brevoWebhook.subject,
    BillingRpc.subscription.subject,
    BillingRpc.stripeWebhook.subject,
    'ally.rpc.privacy.request.create',
  ],
  identity: [],
  chat: [IdentityRpc.getRouting.subject, IdentityRpc.getOrg.subject, BillingRpc.quotaCheck.subject],
  billing: [IdentityRpc.getOrg.subject],
  privacy: (['identity', 'chat', 'billing', 'notify'] as const).flatMap((s) => [privacyRpcs(s).export.subject, privacyRpcs(s).erase.subject, `ally.rpc.${s}.privacy.retention`]),
  notify: [],
};

/** RPCs each service must NOT be able to call: above all the unauthenticated internal ones. */
const MUST_NOT_CALL: Record<Service, string[]> = {
  gateway: [IdentityRpc.getRouting.subject, privacyRpcs('identity').erase.subject, privacyRpcs('chat').export.subject, privacyRpcs('billing').erase.subject, privacyRpcs('notify').erase.subject, 'ally.rpc.chat.privacy.retention'],
  identity: [ChatRpc.listModels.subject, NotifyRpc.devMailbox.subject, BillingRpc.quotaCheck.subject, privacyRpcs('chat').erase.subject],
  // me.get stays open to chat's pods of the release before while they run (RELEASE_BEFORE_RUNS).
  chat: [...(RELEASE_BEFORE_RUNS ? [] : [IdentityRpc.getMe.subject]), IdentityRpc.login.subject, IdentityRpc.createApiKey.subject, IdentityRpc.verifyApiKey.subject, BillingRpc.setCap.subject, privacyRpcs('identity').erase.subject],
  billing: [IdentityRpc.getMe.subject, IdentityRpc.login.subject, ChatRpc.postMessage.subject, privacyRpcs('chat').erase.subject],
  privacy: [IdentityRpc.login.subject, IdentityRpc.getMe.subject, ChatRpc.getConversation.subject, BillingRpc.setCap.subject],
  notify: [IdentityRpc.getMe.subject, ChatRpc.getConversation.subject, BillingRpc.quotaCheck.subject, privacyRpcs('identity').erase.subject],
};

/** Who answers a subject: `ally.rpc.<svc>.…`. */
const owner = (subject: string) => subject.split('.')[2] as Service;
const contract = (subject: string) => ({ subject, input: undefined, authenticated: false }) as unknown as RpcContract<any, unknown>;
const isPermissionError = (err: unknown) => /permissions violation/i.test(String((err as Error)?.message ?? err));

async function rpcClient(nc: NatsConnection): Promise<RpcClient> {
  const client = new RpcClient(nc, '');
  await client.connect();
  return client;
}

const server = new PrivateNatsServer();
const passwords: Record<string, string> = {};
const connections: NatsConnection[] = [];
let dir = '';
let admin: NatsConnection;

/** Connected as `user`; a service with its own inbox prefix, as the platform connects it (libs/platform run-service). */
async function as(user: string): Promise<NatsConnection> {
  const inbox = (SERVICES as readonly string[]).includes(user) ? { inboxPrefix: serviceInboxPrefix(user) } : {};
  const nc = await connect({ servers: server.url, user, pass: passwords[user], name: `${user}-test`, timeout: 3_000, ...inbox });
  connections.push(nc);
  return nc;
}

/** A core-NATS watcher (as the admin) that records every message on `subject`. */
async function watch(subject: string): Promise<string[]> {
  const seen: string[] = [];
  admin.subscribe(subject, { callback: (_err, msg) => void seen.push(msg.subject) });
  await admin.flush();
  return seen;
}

beforeAll(async () => {
  Logger.overrideLogger(false); // Nest's NATS transport logs every status change
  dir = mkdtempSync(join(tmpdir(), 'ally-nats-auth-'));
  copyFileSync(AUTH_FILE, join(dir, 'authorization.conf'));
  writeFileSync(join(dir, 'nats.conf'), 'include "authorization.conf"\n');
  const env: Record<string, string> = {};
  for (const user of [...SERVICES, ADMIN_USER]) {
    // As k8s/scripts/create-secrets.sh makes them: a letter first (see the test below).
    passwords[user] = `n${randomBytes(18).toString('hex')}`;
    env[passwordVariable(user)] = passwords[user];
  }
  await server.start([], { configFile: join(dir, 'nats.conf'), env });
  admin = await as(ADMIN_USER);
  // What the Job `nats-streams` does in Kubernetes, as the operator user.
  await ensureStreams(admin, { prefix: '', replicas: 1 });
});

afterAll(async () => {
  await Promise.all(connections.map((nc) => nc.close().catch(() => undefined)));
  await server.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the generated NATS users', () => {
  it('k8s/base/nats/authorization.conf is what tools/deploy renders (run `node tools/deploy/generate.mjs` after changing the topology)', () => {
    expect(readFileSync(AUTH_FILE, 'utf8')).toBe(renderAuthorization());
  });

  it('holds no password, only references to the servers environment', () => {
    const text = readFileSync(AUTH_FILE, 'utf8');
    const values = [...text.matchAll(/password:\s*(\S+)/g)].map((m) => m[1]);
    expect(values).toHaveLength(SERVICES.length + 1);
    for (const v of values) expect(v).toMatch(/^\$NATS_PASSWORD_[A-Z_]+$/);
  });

  it('the stream files of the Job nats-streams (k8s/base/nats/streams) match what ensureStreams creates, but for the replicas', async () => {
    const jsm = await jetstreamManager(admin);
    for (const name of [EVENTS_STREAM, DLQ_STREAM]) {
      const file = JSON.parse(readFileSync(join(root, 'k8s/base/nats/streams', `${name}.json`), 'utf8'));
      const live = (await jsm.streams.info(name)).config as unknown as Record<string, unknown>;
      const picked = Object.fromEntries(Object.keys(file).filter((k) => k !== 'num_replicas').map((k) => [k, live[k]]));
      expect(picked).toEqual(Object.fromEntries(Object.entries(file).filter(([k]) => k !== 'num_replicas')));
      expect(file.num_replicas).toBe(3);
    }
  });

  it('a password that starts with a digit stops nats-server (it parses $VARIABLES as values), so NATS passwords start with a letter', () => {
    const env = (first: string) => ({
      ...process.env,
      ...Object.fromEntries([...SERVICES, ADMIN_USER].map((u) => [passwordVariable(u), `${first}${randomBytes(8).toString('hex')}`])),
    });
    const check = (first: string) => spawnSync('nats-server', ['-t', '-c', join(dir, 'nats.conf')], { env: env(first), encoding: 'utf8' });
    expect(check('9e').status).not.toBe(0);
    expect(check('n').status).toBe(0);
  });

  it('refuses a wrong password and an unknown user', async () => {
    await expect(connect({ servers: server.url, user: 'chat', pass: 'wrong', timeout: 2_000 })).rejects.toThrow(/authorization/i);
    await expect(connect({ servers: server.url, user: 'nobody', pass: 'x', timeout: 2_000 })).rejects.toThrow(/authorization/i);
    await expect(connect({ servers: server.url, timeout: 2_000 })).rejects.toThrow(/authorization/i);
  });

  it("on NATS before 2.10 (one filter per consumer, as Debian's) no consumer's filter admits another service's events only to skip them", () => {
    // e.g. one filter over identity's and privacy's events is `ally.evt.>`, and would carry every usage event chat writes.
    const wide: string[] = [];
    for (const svc of SERVICES) {
      for (const c of TOPOLOGY[svc].consumers) {
        const filter = subjectFilter(c.types.map(eventSubject), '2.9.10').filter_subject!;
        const family = filter.split('.')[2];
        if (family === '*' || family === '>') wide.push(`${c.durable}: ${filter}`);
      }
    }
    expect(wide).toEqual([]);
  });

  it('the grants cover what the services code does: every durable consumer and every RPC another service answers', () => {
    const problems: string[] = [];
    const rpcObjects = contracts as unknown as Record<string, Record<string, { subject?: string }>>;
    for (const svc of SERVICES) {
      const src = join(root, 'services', svc, 'src');
      const text = sourceOf(src);
      const durables = [...text.matchAll(/durable:\s*['"]([A-Za-z0-9_-]+)['"]/g)].map((m) => m[1]);
      for (const d of durables) {
        if (!TOPOLOGY[svc].consumers.some((c) => c.durable === d)) problems.push(`${svc} runs consumer '${d}' that tools/deploy/nats-permissions.ts does not grant`);
      }
      const called = new Set<string>();
      for (const m of text.matchAll(/\b([A-Z][a-z]+Rpc)\.([A-Za-z]+)\b/g)) {
        const subject = rpcObjects[m[1]]?.[m[2]]?.subject;
        if (subject) called.add(subject);
      }
      for (const m of text.matchAll(/['"`](ally\.rpc\.[a-z-]+\.[A-Za-z0-9.-]+)['"`]/g)) called.add(m[1]);
      // privacyRpcs('x') / privacyRetentionRpc('x'); privacy calls them with a variable (its saga steps, its retention plan): every other service.
      for (const m of text.matchAll(/\b(privacyRpcs|privacyRetentionRpc)\(\s*([^)]*?)\s*\)/g)) {
        const literal = /^['"]([a-z]+)['"]$/.exec(m[2])?.[1];
        const targets = literal ? [literal] : svc === 'privacy' ? SERVICES.filter((s) => s !== 'privacy' && s !== 'gateway') : [];
        for (const target of targets) {
          if (m[1] === 'privacyRpcs') called.add(privacyRpcs(target).erase.subject).add(privacyRpcs(target).export.subject);
          else called.add(`ally.rpc.${target}.privacy.retention`);
        }
      }
      for (const subject of called) {
        if (owner(subject) === svc) continue; // its own: it answers them
        if (!mayPublish(svc, subject)) problems.push(`${svc} calls ${subject}, which tools/deploy/nats-permissions.ts does not grant`);
      }
    }
    expect(problems).toEqual([]);
  });
});

describe("chat's answer streams to the gateway (ally.stream.gateway.<id>)", () => {
  it('chat publishes frames the gateway reads, the gateway acks on <subject>.ctl, and no other service can inject or read them', async () => {
    const gateway = await as('gateway');
    const chat = await as('chat');
    const subject = `ally.stream.gateway.${randomBytes(8).toString('hex')}`;
    const frames: string[] = [];
    const acks: string[] = [];
    gateway.subscribe(subject, { callback: (_e, m) => void frames.push(m.string()) });
    chat.subscribe(`${subject}.ctl`, { callback: (_e, m) => void acks.push(m.string()) });
    await gateway.flush();
    await chat.flush();
    chat.publish(subject, '{"seq":1,"type":"delta"}');
    gateway.publish(`${subject}.ctl`, '{"ack":1}');
    await waitFor(async () => frames.length === 1 && acks.length === 1, 'a frame and its ack');
    for (const other of SERVICES.filter((s) => s !== 'chat')) {
      const nc = await as(other);
      if (other !== 'gateway') {
        // Only chat writes answers, only the gateway reads them.
        nc.publish(subject, '{"seq":2,"type":"delta","injected":true}');
        nc.publish(`${subject}.ctl`, '{"cancel":true}');
        expect(isPermissionError(await nc.subscribe('ally.stream.gateway.*').closed)).toBe(true);
      }
      await nc.flush();
    }
    await gateway.flush();
    await chat.flush();
    expect(frames).toEqual(['{"seq":1,"type":"delta"}']);
    expect(acks).toEqual(['{"ack":1}']);
    expect(isPermissionError(await chat.subscribe('ally.stream.gateway.*').closed)).toBe(true);
  });
});

function sourceOf(dir: string): string {
  let out = '';
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return '';
  }
  for (const name of entries) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out += sourceOf(path);
    else if (name.endsWith('.ts') && !name.endsWith('.spec.ts')) out += readFileSync(path, 'utf8') + '\n';
  }
  return out;
}

/** An RPC responder as `svc` through the platform's own transport (Nest's ServerNats on the shared connection). */
async function serve(nc: NatsConnection, svc: Service, subjects: string[]): Promise<RpcServer> {
  const rpc = new RpcServer({ connection: nc, prefix: '', queue: svc });
  for (const subject of subjects) rpc.addHandler(subject, async (data: unknown) => ({ answeredBy: svc, subject, data }));
  await new Promise<void>((resolve, reject) => rpc.listen((err?: unknown) => (err ? reject(err) : resolve())));
  await nc.flush();
  return rpc;
}

const EVENT_SAMPLE = (svc: Service) => `ally.evt.${svc}.probe.happened`;

for (const svc of SERVICES) {
  const t = TOPOLOGY[svc];
  const others = SERVICES.filter((s) => s !== svc);

  describe(`NATS user ${svc}`, () => {
    let nc: NatsConnection;
    beforeAll(async () => {
      nc = await as(svc);
    });

    it('runs ensureStreams at start-up (JetStream info and update of ALLY_EVENTS / _DLQ) and may not delete or purge them', async () => {
      await expect(ensureStreams(nc, { prefix: '', replicas: 1 })).resolves.toBeUndefined();
      const jsm = await jetstreamManager(nc);
      await expect(jsm.streams.delete(EVENTS_STREAM)).rejects.toThrow(/permissions violation/i);
      await expect(jsm.streams.purge(EVENTS_STREAM)).rejects.toThrow(/permissions violation/i);
      await expect(jsm.streams.getMessage(EVENTS_STREAM, { seq: 1 })).rejects.toThrow(/permissions violation/i);
      await expect(jsm.streams.info(DLQ_STREAM)).resolves.toBeTruthy();
      await expect(jsm.streams.delete(DLQ_STREAM)).rejects.toThrow(/permissions violation/i);
    });

    if (t.publishesEvents) {
      it(`publishes its own events (ally.evt.${svc}.>) into ALLY_EVENTS`, async () => {
        const ack = await jetstream(nc).publish(EVENT_SAMPLE(svc), JSON.stringify({ probe: true }), { msgID: `probe-${svc}-${Date.now()}` });
        expect(ack.stream).toBe(EVENTS_STREAM);
      });
    } else {
      it('publishes no events at all', async () => {
        await expect(jetstream(nc).publish(EVENT_SAMPLE(svc), '{}')).rejects.toThrow(/permissions violation/i);
      });
    }

    it("reads replies on its own inbox prefix, never on another service's (the shared _INBOX only while pods of the release before run)", async () => {
      expect(inboxPrefix(svc)).toBe(serviceInboxPrefix(svc));
      for (const foreign of [...(RELEASE_BEFORE_RUNS ? [] : ['_INBOX.>']), ...others.map((o) => `${serviceInboxPrefix(o)}.>`)]) {
        const closed = await nc.subscribe(foreign).closed;
        expect({ foreign, refused: isPermissionError(closed) }).toEqual({ foreign, refused: true });
      }
    });

    it("cannot publish another service's events, neither through JetStream nor as plain messages", async () => {
      const seen = await watch('ally.evt.>');
      for (const other of others) {
        const subject = `ally.evt.${other}.user.registered`;
        const err = await jetstream(nc).publish(subject, '{}').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect({ subject, refused: isPermissionError(err) }).toEqual({ subject, refused: true });
        nc.publish(`ally.evt.${other}.organization.created`, '{}');
      }
      await nc.flush();
      await admin.flush();
      expect(seen).toEqual([]);
    });

    it("cannot answer another service's RPCs (its subscription is refused, so a request finds no responder)", async () => {
      for (const other of others) {
        const subject = `ally.rpc.${other}.probe.get`;
        const sub = nc.subscribe(`ally.rpc.${other}.>`, { queue: other });
        const closed = await sub.closed;
        expect({ subject, refused: isPermissionError(closed) }).toEqual({ subject, refused: true });
        await expect(admin.request(subject, '{}', { timeout: 1_000 })).rejects.toThrow(/no responders/i);
      }
    });

    it("cannot eavesdrop on another service's events or RPC traffic", async () => {
      for (const subject of ['ally.evt.>', 'ally.rpc.>', '>', `ally.rpc.${others[0]}.>`]) {
        const closed = await nc.subscribe(subject).closed;
        expect({ subject, refused: isPermissionError(closed) }).toEqual({ subject, refused: true });
      }
    });

    if (t.servesRpc) {
      it(`answers its own RPCs only as a member of queue group "${svc}"`, async () => {
        const subject = `ally.rpc.${svc}.probe.get`;
        const rpc = await serve(nc, svc, [subject]);
        try {
          const reply = (await (await rpcClient(admin)).call(contract(subject), { hello: 1 } as never, { timeoutMs: 3_000 })) as { answeredBy: string; data: { input: unknown } };
          expect(reply).toMatchObject({ answeredBy: svc, subject, data: { input: { hello: 1 } } });
        } finally {
          await rpc.close();
        }
        const plain = await nc.subscribe(`ally.rpc.${svc}.>`).closed;
        expect(isPermissionError(plain)).toBe(true);
        const wrongQueue = await nc.subscribe(`ally.rpc.${svc}.>`, { queue: 'someone-else' }).closed;
        expect(isPermissionError(wrongQueue)).toBe(true);
      });

      it('may reply only to a request it received (no forged replies to other inboxes)', async () => {
        const errors: unknown[] = [];
        (async () => {
          for await (const s of nc.status()) if (s.type === 'error') errors.push(s.error);
        })().catch(() => undefined);
        nc.publish('_INBOX.somebody-elses-request', '{"forged":true}');
        await nc.flush();
        await waitFor(async () => errors.some(isPermissionError), 'a permissions violation for the forged reply', 3_000);
      });
    }

    if (MUST_CALL[svc].length) {
      it(`calls the RPCs it uses: ${MUST_CALL[svc].join(', ')}`, async () => {
        const byOwner = new Map<Service, string[]>();
        for (const s of MUST_CALL[svc]) byOwner.set(owner(s), [...(byOwner.get(owner(s)) ?? []), s]);
        const servers: RpcServer[] = [];
        try {
          for (const [target, subjects] of byOwner) servers.push(await serve(await as(target), target, subjects));
          const client = await rpcClient(nc);
          for (const subject of MUST_CALL[svc]) {
            const reply = (await client.call(contract(subject), {} as never, { timeoutMs: 3_000 })) as { answeredBy: string; subject: string };
            expect({ answeredBy: reply.answeredBy, subject: reply.subject }).toEqual({ answeredBy: owner(subject), subject });
          }
        } finally {
          await Promise.all(servers.map((s) => s.close()));
        }
      });
    }

    it(`cannot call what it does not need: ${MUST_NOT_CALL[svc].join(', ')}`, async () => {
      for (const subject of MUST_NOT_CALL[svc]) {
        const err = await nc.request(subject, '{}', { timeout: 2_000 }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect({ subject, refused: isPermissionError(err) }).toEqual({ subject, refused: true });
      }
    });

    it("cannot read another service's durable consumers", async () => {
      const jsm = await jetstreamManager(nc);
      const foreign = SERVICES.filter((s) => s !== svc).flatMap((s) => TOPOLOGY[s].consumers.map((c) => c.durable));
      for (const durable of foreign) {
        const err = await jsm.consumers.info(EVENTS_STREAM, durable).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect({ durable, refused: isPermissionError(err) }).toEqual({ durable, refused: true });
      }
      await expect(jsm.consumers.add(EVENTS_STREAM, { durable_name: `${svc}-sneaky`, filter_subject: 'ally.evt.>' })).rejects.toThrow(/permissions violation/i);
    });

    for (const grant of t.consumers) {
      it(`runs its consumer ${grant.durable}: creates it, pulls, acks, and dead-letters a poison message`, async () => {
        const seen: EventEnvelope[] = [];
        const fakeDb = {
          // EventConsumer's inbox insert "succeeds", then the handler runs; no database is needed to prove NATS rights.
          transaction: async (work: (em: EntityManager) => Promise<unknown>) => work({ query: async () => [{ event_id: 'x' }] } as unknown as EntityManager),
        };
        const consumer = new EventConsumer({
          durable: grant.durable,
          types: grant.types,
          handler: async (_em, event) => void seen.push(event),
          dataSource: fakeDb as never,
          nats: nc,
          prefix: '',
          logger: pino({ level: 'silent' }),
          registry: new Registry(),
          ackWaitMs: 2_000,
        });
        await consumer.start();
        try {
          const type = grant.types[0];
          const source = await as(type.split('.')[0]);
          const event = createEnvelope({ type, source: type.split('.')[0], data: { probe: true } });
          await jetstream(source).publish(`ally.evt.${type}`, JSON.stringify(event), { msgID: event.id });
          await waitFor(async () => seen.some((e) => e.id === event.id), `${grant.durable} to receive ${type}`);
          await jetstream(source).publish(`ally.evt.${type}`, 'not json', { msgID: `${event.id}-poison` });
          const jsm = await jetstreamManager(admin);
          await waitFor(async () => {
            const info = await jsm.consumers.info(EVENTS_STREAM, grant.durable);
            return info.num_ack_pending === 0 && info.num_pending === 0 && info.delivered.stream_seq > 0;
          }, `${grant.durable} to ack everything`);
          const dlq = await jsm.streams.info(deadLetterStreamName(''), { subjects_filter: `ally.dlq.${grant.durable}` });
          expect(dlq.state.subjects?.[`ally.dlq.${grant.durable}`]).toBeGreaterThanOrEqual(1);
        } finally {
          await consumer.stop();
        }
      });
    }
  });
}
