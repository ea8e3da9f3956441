/**
 * Least-privilege NATS users, one per service, derived from who talks to whom
 * (ARCHITECTURE.md, "Messaging"). This file is the single source of truth:
 * `node tools/deploy/generate.mjs` renders it into
 * `k8s/base/nats/authorization.conf` (included by the NATS servers' config and
 * by docker-compose), and e2e/nats-permissions.spec.ts starts a nats-server with
 * that very file and proves every grant and every refusal.
 *
 * No imports on purpose: the generator transpiles this file alone.
 *
 * What a service may do, and why:
 * - publish its own events `ally.evt.<svc>.>` (the outbox relay, into ALLY_EVENTS);
 * - answer its own RPCs: subscribe `ally.rpc.<svc>.>` only in queue group `<svc>`
 *   (Nest's NATS transport always uses the queue group), reply through
 *   `allow_responses` (a reply only to a request it received, once) instead of
 *   a blanket publish right on `_INBOX.>`;
 * - call exactly the RPCs listed in `calls` (requests go out on the RPC subject,
 *   replies come back on its own inbox prefix `_INBOX_<svc>.>`, which only it may
 *   read: a service taken over reads no other's replies, such as identity's token pairs);
 * - run its own durable consumers on ALLY_EVENTS: the JetStream API subjects
 *   for those durable names only, their acks, and their dead-letter subject;
 * - run `ensureStreams` at start-up (libs/messaging): JetStream account info
 *   and info / create / update of ALLY_EVENTS and ALLY_EVENTS_DLQ, and nothing
 *   else of the JetStream API (no delete, purge, message get or delete, no
 *   other stream or consumer).
 */

export const SERVICES = ['gateway', 'identity', 'chat', 'billing', 'privacy', 'notify'] as const;
export type Service = (typeof SERVICES)[number];

/** The operator user: creates the streams (k8s Job `nats-streams`) and is the break-glass login for `nats` CLI work. */
export const ADMIN_USER = 'ally-admin';

export const EVENTS_STREAM = 'ALLY_EVENTS';
export const DLQ_STREAM = 'ALLY_EVENTS_DLQ';

export interface ConsumerGrant {
  /** Durable name `<service>-<purpose>`, as passed to EventConsumer. */
  durable: string;
  /** Event types it reads (documentation and test data; NATS cannot check a consumer's filter). */
  types: string[];
}

export interface ServiceTopology {
  /** Answers RPCs on `ally.rpc.<svc>.>` (queue group `<svc>`). */
  servesRpc: boolean;
  /** Publishes `ally.evt.<svc>.>` through its outbox. */
  publishesEvents: boolean;
  /** RPC subjects (NATS wildcards allowed) it calls. */
  calls: string[];
  /** RPCs only its pods of the release before call: allowed while `RELEASE_BEFORE_RUNS`. */
  callsOfReleaseBefore?: string[];
  /** Publish subjects it must never use even where `calls` has a wildcard. */
  denyPublish?: string[];
  consumers: ConsumerGrant[];
  /** Core-NATS subjects beyond RPC and events (chat → gateway answer streams). */
  publish?: string[];
  subscribe?: string[];
  /** Why, for the generated file. */
  note: string;
}

/** Data-subject export / erase and the retention purge every service holding personal data answers. */
const privacyRpcsOf = (svc: Service) => [`ally.rpc.${svc}.privacy.export`, `ally.rpc.${svc}.privacy.erase`, `ally.rpc.${svc}.privacy.retention`, `ally.rpc.${svc}.privacy.handled`];

export const TOPOLOGY: Record<Service, ServiceTopology> = {
  gateway: {
    note: 'HTTP edge: calls the public RPCs of every service, never their privacy RPCs; reads answer streams from chat.',
    servesRpc: false,
    publishesEvents: false,
    calls: ['ally.rpc.identity.>', 'ally.rpc.chat.>', 'ally.rpc.notify.>', 'ally.rpc.billing.>', 'ally.rpc.privacy.>'],
    // Data-subject export/erase are only for privacy's sagas; they carry no end-user auth. Contacts and routing are notify's and chat's.
    denyPublish: ['ally.rpc.*.privacy.>', 'ally.rpc.identity.contact.>', 'ally.rpc.identity.routing.>'],
    consumers: [],
    // StreamSubscriber: frames on ally.stream.gateway.<nuid>, acks and cancel on <subject>.ctl; sessions identity ended;
    // the rate-limit counts the replicas tell each other.
    subscribe: ['ally.stream.gateway.*', 'ally.identity.sessions.ended', 'ally.identity.signing-keys.changed', 'ally.gateway.rate-counts.*'],
    publish: ['ally.stream.gateway.*.ctl', 'ally.gateway.rate-counts.*'],
  },
  identity: {
    note: 'Owns users, orgs, sessions; calls nobody; hears objections and restrictions from privacy; tells the gateways of ended sessions and changed signing keys.',
    servesRpc: true,
    publishesEvents: true,
    calls: [],
    publish: ['ally.identity.sessions.ended', 'ally.identity.signing-keys.changed'],
    consumers: [
      { durable: 'identity-objections', types: ['privacy.subject.objected', 'privacy.subject.objection-upheld', 'privacy.request.decided'] },
      { durable: 'identity-restrictions', types: ['privacy.subject.restricted', 'privacy.subject.restriction-lifted'] },
    ],
  },
  chat: {
    note: 'Asks identity for the caller and org policy, billing for quota, privacy whether a hold keeps a conversation; replicates identity state; streams answers to the gateway.',
    servesRpc: true,
    publishesEvents: true,
    calls: ['ally.rpc.identity.routing.get', 'ally.rpc.identity.org.get', 'ally.rpc.billing.quota.check', 'ally.rpc.privacy.legal-hold.own'],
    // Before routing.get, chat read restrictToEu and memberships from the whole `me`.
    callsOfReleaseBefore: ['ally.rpc.identity.me.get'],
    consumers: [
      {
        durable: 'chat-policy',
        types: [
          'identity.user.residency-set',
          'identity.user.deleted',
          'identity.organization.created',
          'identity.organization.dissolved',
          'identity.organization.policy-changed',
          'identity.member.added',
          'identity.member.removed',
        ],
      },
      { durable: 'chat-restrictions', types: ['privacy.subject.restricted', 'privacy.subject.restriction-lifted'] },
    ],
    // StreamPublisher: frames to the gateway's subject, acks back on <subject>.ctl.
    // AnswersInFlight (CHAT_ANSWERS_STOP_SUBJECT): a deletion or erasure on one replica stops the answer another one writes.
    publish: ['ally.stream.gateway.*', 'ally.chat.answers.stop', 'ally.chat.deployments.outside-eu'],
    subscribe: ['ally.stream.gateway.*.ctl', 'ally.chat.answers.stop', 'ally.chat.deployments.outside-eu'],
  },
  billing: {
    note: 'Turns completions into its ledger, counts seats from memberships, ends a dissolved organisation\'s subscription; checks org access through identity.',
    servesRpc: true,
    publishesEvents: true,
    calls: ['ally.rpc.identity.org.get'],
    consumers: [
      { durable: 'billing-ledger', types: ['chat.completion.recorded'] },
      { durable: 'billing-seats', types: ['identity.member.added', 'identity.member.removed'] },
      { durable: 'billing-dissolutions', types: ['identity.organization.dissolved'] },
    ],
  },
  privacy: {
    note: "Runs data-subject sagas and retention runs: calls every other service's privacy export / erase / retention / handled RPCs, nothing else; follows rectifications.",
    servesRpc: true,
    publishesEvents: true,
    calls: [...privacyRpcsOf('identity'), 'ally.rpc.identity.privacy.subject', ...privacyRpcsOf('chat'), ...privacyRpcsOf('billing'), ...privacyRpcsOf('notify')],
    consumers: [{ durable: 'privacy-rectification', types: ['identity.user.updated'] }],
  },
  notify: {
    note: 'Mails users about identity, billing and privacy events; asks identity whom to mail about a workspace.',
    servesRpc: true,
    publishesEvents: true,
    calls: ['ally.rpc.identity.contact.list'],
    consumers: [
      {
        durable: 'notify-mail',
        types: [
          'identity.user.registered',
          'identity.user.verified',
          'identity.password.reset-requested',
          'identity.invitation.created',
          'identity.user.signed-in',
          'identity.user.settings-changed',
          'identity.user.email-change-requested',
          'identity.user.email-changed',
        ],
      },
      { durable: 'notify-mail-billing', types: ['billing.payment.failed', 'billing.subscription.changed', 'billing.quota.threshold-reached'] },
      { durable: 'notify-mail-privacy', types: ['privacy.export.ready', 'privacy.request.decided', 'privacy.erasure.completed', 'privacy.request.escalated'] },
      { durable: 'notify-restrictions', types: ['privacy.subject.restricted', 'privacy.subject.restriction-lifted'] },
      { durable: 'notify-objections', types: ['privacy.subject.objected', 'privacy.request.decided'] },
    ],
  },
};

export interface Permissions {
  publish: { allow: string[]; deny: string[] };
  subscribe: { allow: string[]; deny: string[] };
  /** NATS `allow_responses`: may reply once to each request it received. */
  allowResponses: boolean;
}

/** The JetStream API subjects `ensureStreams` (libs/messaging/src/jetstream.ts) uses. */
export function streamApiSubjects(): string[] {
  const out = ['$JS.API.INFO'];
  for (const stream of [EVENTS_STREAM, DLQ_STREAM]) {
    for (const op of ['INFO', 'CREATE', 'UPDATE']) out.push(`$JS.API.STREAM.${op}.${stream}`);
  }
  return out;
}

/** What a durable pull consumer (libs/messaging/src/event-consumer.ts) needs: info, create/update, pull, ack, dead-letter. */
export function consumerSubjects(durable: string): string[] {
  const s = EVENTS_STREAM;
  return [
    `$JS.API.CONSUMER.INFO.${s}.${durable}`,
    // Create and update share these; the server >= 2.9 form carries a single filter subject after the name.
    `$JS.API.CONSUMER.CREATE.${s}.${durable}`,
    `$JS.API.CONSUMER.CREATE.${s}.${durable}.>`,
    `$JS.API.CONSUMER.DURABLE.CREATE.${s}.${durable}`,
    `$JS.API.CONSUMER.MSG.NEXT.${s}.${durable}`,
    `$JS.ACK.${s}.${durable}.>`,
    `ally.dlq.${durable}`,
  ];
}

/**
 * While pods of the release before run beside this one, what they need stays allowed: replies on NATS's shared
 * `_INBOX` (this release moved each service's to `_INBOX_<svc>`; nothing of this release travels there, so
 * reading it shows a taken-over service only old pods' replies), and the RPCs in `callsOfReleaseBefore`. The
 * next release sets this to false (k8s/README.md, "NATS users").
 */
export const RELEASE_BEFORE_RUNS = true;

/** A service's inbox prefix: the same rule as `serviceInboxPrefix` in libs/contracts (this file imports nothing; a test compares them). */
export const inboxPrefix = (svc: Service): string => `_INBOX_${svc}`;

export function permissionsFor(svc: Service): Permissions {
  const t = TOPOLOGY[svc];
  const publish: string[] = [];
  if (t.publishesEvents) publish.push(`ally.evt.${svc}.>`);
  publish.push(...t.calls, ...(RELEASE_BEFORE_RUNS ? (t.callsOfReleaseBefore ?? []) : []), ...(t.publish ?? []), ...streamApiSubjects());
  for (const c of t.consumers) publish.push(...consumerSubjects(c.durable));
  // Replies to its own requests (Nest RPC client, JetStream API and publish acks, pulled messages), on its own prefix;
  // and, for one release, on the shared one pods of the release before still use (RELEASE_BEFORE_RUNS).
  const subscribe = [`${inboxPrefix(svc)}.>`, ...(RELEASE_BEFORE_RUNS ? ['_INBOX.>'] : [])];
  // `<subject> <queue>`: only as a member of its own queue group.
  if (t.servesRpc) subscribe.push(`ally.rpc.${svc}.> ${svc}`);
  subscribe.push(...(t.subscribe ?? []));
  return {
    publish: { allow: publish, deny: t.denyPublish ?? [] },
    subscribe: { allow: subscribe, deny: [] },
    allowResponses: t.servesRpc,
  };
}

/** The environment variable holding a user's password on the NATS servers (from the Secret `ally-<svc>-nats`). */
export const passwordVariable = (user: string): string => `NATS_PASSWORD_${user.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;

const q = (s: string) => JSON.stringify(s);
const list = (items: string[], indent: string) =>
  items.length ? `[\n${items.map((i) => `${indent}  ${q(i)}`).join(',\n')}\n${indent}]` : '[]';

/**
 * The `authorization { users: [...] }` block. Passwords are references to
 * environment variables (`$NATS_PASSWORD_<USER>`), resolved by nats-server at
 * start-up, so the file holds no secret and is the same everywhere.
 */
export function renderAuthorization(): string {
  const lines: string[] = [
    '# GENERATED by `node tools/deploy/generate.mjs` from tools/deploy/nats-permissions.ts: do not edit by hand.',
    '# One NATS user per service with least-privilege permissions; passwords come from the',
    '# environment of nats-server ($NATS_PASSWORD_<USER>), never from this file.',
    'authorization {',
    '  users: [',
  ];
  const users: string[] = [];
  for (const svc of SERVICES) {
    const p = permissionsFor(svc);
    const i = '      ';
    const body = [
      `    # ${svc}: ${TOPOLOGY[svc].note}`,
      '    {',
      `      user: ${q(svc)}`,
      `      password: $${passwordVariable(svc)}`,
      '      permissions: {',
      '        publish: {',
      `          allow: ${list(p.publish.allow, `${i}    `)}`,
      ...(p.publish.deny.length ? [`          deny: ${list(p.publish.deny, `${i}    `)}`] : []),
      '        }',
      '        subscribe: {',
      `          allow: ${list(p.subscribe.allow, `${i}    `)}`,
      '        }',
      ...(p.allowResponses ? ['        allow_responses: true'] : []),
      '      }',
      '    }',
    ];
    users.push(body.join('\n'));
  }
  users.push(
    [
      '    # The operator: creates the streams (Job nats-streams) and serves `nats` CLI work. Keep its password out of service pods.',
      '    {',
      `      user: ${q(ADMIN_USER)}`,
      `      password: $${passwordVariable(ADMIN_USER)}`,
      '    }',
    ].join('\n'),
  );
  lines.push(users.join('\n'), '  ]', '}', '');
  return lines.join('\n');
}

/** NATS subject matching: `*` is one token, `>` one or more trailing tokens. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

/** Whether the generated permissions let `svc` publish to `subject` (deny wins). */
export function mayPublish(svc: Service, subject: string): boolean {
  const p = permissionsFor(svc).publish;
  return p.allow.some((a) => subjectMatches(a, subject)) && !p.deny.some((d) => subjectMatches(d, subject));
}
