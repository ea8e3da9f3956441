import { Injectable } from '@nestjs/common';
import { DataSource, type EntityManager } from 'typeorm';
import { decodeCursor, encodeCursor, ERASED_USER, EXPORT_PAGE_BYTES, fitting, type PrivacyErasure, type PrivacyExport, ProblemError } from '@ally/contracts';
import { forgetSubjectInOutbox } from '@ally/messaging';
import { lockSubject } from '@ally/persistence';
import { AnswersInFlight } from '../completions/answers-in-flight.js';
import { openedAssistantText } from '../assistants/assistant-text.js';
import { ContentCipher } from '../crypto/content-cipher.service.js';
import { MessageEntity } from '../conversations/message.entity.js';

/** Messages one call of a sliced erasure deletes at most: a transaction of a few seconds, well inside the call's timeout. */
const ERASE_SLICE = 20_000;

/** Items per export page at most, however small: bounds the rows read and decrypted for one answer. */
const EXPORT_PAGE_ITEMS = 1000;

type Kind = 'conversations' | 'assistants' | 'messages';
const KINDS: Kind[] = ['conversations', 'assistants', 'messages'];

/** An item of the export in the order of pages, before its content is read. */
interface Slot {
  kind: Kind;
  id: string;
  ms: number;
  /** Estimated bytes of its JSON, from the stored lengths. */
  bytes: number;
}

/**
 * Items follow each other by creation (to the millisecond, as the export
 * shows it), then id; the page token (`nextPage`, which privacy passes back
 * as it is) is the shared cursor of the last item given out, so items deleted
 * or added meanwhile neither shift nor repeat others.
 */
const bySlot = (a: Slot, b: Slot) => a.ms - b.ms || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** Where a page starts: the beginning (0), or behind the item a token names. */
function startOf(page: number | string): { at: string; id: string } | undefined {
  if (page === 0) return undefined;
  if (typeof page === 'number') throw new ProblemError(400, 'Not an export page chat gave out: start again at page 0');
  return decodeCursor(page);
}

/** The milliseconds of a row's created_at, in SQL (the same the export shows, and exact: no Date in between). */
const msOf = (alias: string) => `(extract(epoch FROM date_trunc('milliseconds', ${alias}.created_at)) * 1000)::bigint`;
const orderOf = (alias: string) => `date_trunc('milliseconds', ${alias}.created_at), ${alias}.id`;

/** JSON bytes of an item's fixed fields (ids, times, names of fields): added to its stored lengths. */
const ITEM_OVERHEAD = { conversations: 220, assistants: 160, messages: 260 } satisfies Record<Kind, number>;
/** A sealed text is its UTF-8 bytes and 28 (IV and tag). */
const SEAL_OVERHEAD = 28;

const inScope = (scope: string) => (scope === 'all' ? `TRUE` : `workspace = $2`);

/** chat's part of data-subject requests: everything of the subject, decrypted; erasure crypto-shreds. */
@Injectable()
export class ChatPrivacyService {
  constructor(
    private readonly ds: DataSource,
    private readonly cipher: ContentCipher,
    private readonly inFlight: AnswersInFlight,
  ) {}

  /**
   * Everything of the subject in scope, decrypted: conversations, assistants
   * and messages in the order of their creation, in pages of at most
   * EXPORT_PAGE_BYTES of JSON (an answer must fit a NATS message) and
   * EXPORT_PAGE_ITEMS items; the first page also holds the settings. Each page
   * has the three arrays (maybe empty); later ones continue them.
   */
  async export(userId: string, scope: string, page: number | string = 0): Promise<PrivacyExport> {
    const after = startOf(page);
    // One snapshot for the page: what its slots name is still there when it is read.
    return this.ds.transaction('REPEATABLE READ', async (em) => {
      // Each kind's next ITEMS + 1 hold the next ITEMS + 1 of all, in creation order.
      // One after the other: a transaction's queries share its one connection.
      const all: Slot[] = [];
      for (const kind of KINDS) all.push(...(await this.slotsOf(em, kind, userId, scope, after, EXPORT_PAGE_ITEMS + 1)));
      all.sort(bySlot);
      // What may fit by the stored lengths is read; what fits by its JSON goes out.
      const slots = fitting(all.slice(0, EXPORT_PAGE_ITEMS), EXPORT_PAGE_BYTES, (s) => s.bytes);
      const items = fitting(await this.read(em, userId, scope, slots), EXPORT_PAGE_BYTES, (i) => i.bytes);
      const chatHistory: Record<Kind, unknown[]> = { conversations: [], messages: [], assistants: [] };
      items.forEach((item, i) => item.value !== undefined && chatHistory[slots[i].kind].push(item.value));
      const last = slots[items.length - 1];
      const next = items.length < all.length ? { nextPage: encodeCursor(new Date(last.ms), last.id) } : {};
      if (after) return { service: 'chat', categories: { 'chat-history': chatHistory }, ...next };
      const [settings] = await em.query(`SELECT restrict_to_eu FROM user_settings WHERE user_id = $1`, [userId]);
      // The replica's rows about the subject, in scope: their memberships as chat knows them, and restrictions in force.
      const memberships = scope === 'private' ? [] : await em.query(`SELECT org_id, role FROM memberships WHERE user_id = $1 AND ($2::text = 'all' OR org_id::text = $2) ORDER BY org_id`, [userId, scope]);
      const restrictions = await em.query(`SELECT scope, request_id, created_at, lifted_at FROM restrictions WHERE user_id = $1 AND ($2::text = 'all' OR scope IN ('all', $2)) ORDER BY created_at`, [userId, scope]);
      return {
        service: 'chat',
        categories: { 'chat-history': chatHistory, 'policy-replica': { restrictToEu: settings?.restrict_to_eu ?? null, memberships: JSON.parse(JSON.stringify(memberships)), restrictions: JSON.parse(JSON.stringify(restrictions)) } },
        ...next,
      };
    });
  }

  private async slotsOf(em: EntityManager, kind: Kind, userId: string, scope: string, after: { at: string; id: string } | undefined, limit: number): Promise<Slot[]> {
    const params: unknown[] = scope === 'all' ? [userId] : [userId, scope];
    const alias = kind === 'messages' ? 'm' : 'x';
    let behind = 'TRUE';
    if (after) {
      const at = params.push(after.at);
      const id = params.push(after.id);
      behind = `(${orderOf(alias)}) > ($${at}::timestamptz, $${id}::uuid)`;
    }
    const sql = {
      conversations: `SELECT x.id, ${msOf('x')} AS ms, coalesce(octet_length(x.title_enc) - ${SEAL_OVERHEAD}, 0) AS bytes
                        FROM conversations x WHERE x.user_id = $1 AND ${inScope(scope).replace('workspace', 'x.workspace')} AND ${behind}`,
      assistants: `SELECT x.id, ${msOf('x')} AS ms, coalesce(octet_length(x.name) + octet_length(x.instructions), octet_length(x.sealed) - ${SEAL_OVERHEAD}, 0) + coalesce(octet_length(x.model), 0) AS bytes
                     FROM assistants x WHERE x.created_by = $1 AND ${inScope(scope).replace('workspace', 'x.workspace')} AND ${behind}`,
      messages: `SELECT m.id, ${msOf('m')} AS ms, octet_length(m.content_enc) - ${SEAL_OVERHEAD} + coalesce(octet_length(m.residency::text), 0) AS bytes
                   FROM messages m JOIN conversations c ON c.id = m.conversation_id
                  WHERE c.user_id = $1 AND ${inScope(scope).replace('workspace', 'c.workspace')} AND ${behind}`,
    }[kind];
    const rows: { id: string; ms: string; bytes: number | null }[] = await em.query(`${sql} ORDER BY ${orderOf(alias)} LIMIT ${limit}`, params);
    return rows.map((r) => ({ kind, id: r.id, ms: Number(r.ms), bytes: Math.max(0, Number(r.bytes ?? 0)) + ITEM_OVERHEAD[kind] }));
  }

  /** The slots' items as the export shows them (decrypted), each with the bytes of its JSON; `value` undefined for one gone meanwhile. */
  private async read(em: EntityManager, userId: string, scope: string, slots: Slot[]): Promise<{ value: unknown; bytes: number }[]> {
    const ids = (kind: Kind) => slots.filter((s) => s.kind === kind).map((s) => s.id);
    const params = (kind: Kind) => (scope === 'all' ? [userId, ids(kind)] : [userId, ids(kind), scope]);
    const scoped = (column: string) => (scope === 'all' ? 'TRUE' : `${column} = $3`);
    // Only the kinds the page holds are read, one after the other: a transaction's queries share its connection.
    const query = (kind: Kind, sql: string) => (ids(kind).length ? em.query(sql, params(kind)) : []);
    const conversations = await query('conversations', `SELECT id, workspace, title_enc, assistant_id, created_at, updated_at FROM conversations WHERE user_id = $1 AND id = ANY($2::uuid[]) AND ${scoped('workspace')}`);
    const assistants = await query('assistants', `SELECT id, workspace, name, instructions, sealed, model, created_at FROM assistants WHERE created_by = $1 AND id = ANY($2::uuid[]) AND ${scoped('workspace')}`);
    const messages = await query(
      'messages',
      `SELECT m.id, m.conversation_id, m.role, m.content_enc, m.model, m.prompt_tokens, m.completion_tokens, m.residency, m.status, m.created_at
         FROM messages m JOIN conversations c ON c.id = m.conversation_id
        WHERE c.user_id = $1 AND m.id = ANY($2::uuid[]) AND ${scoped('c.workspace')}`,
    );
    const sealed = [
      ...conversations.filter((c: { title_enc: Buffer | null }) => c.title_enc).map((c: { title_enc: Buffer }) => c.title_enc),
      ...messages.map((m: { content_enc: Buffer }) => m.content_enc),
      ...assistants.filter((a: { sealed: Buffer | null }) => a.sealed).map((a: { sealed: Buffer }) => a.sealed),
    ];
    const texts = await this.cipher.decryptMany(em, sealed.map((s: Buffer) => ({ userId, sealed: s })));
    let t = 0;
    const values = new Map<string, unknown>();
    for (const c of conversations) {
      values.set(`conversations:${c.id}`, {
        id: c.id,
        workspace: c.workspace,
        title: c.title_enc ? texts[t++] : null,
        assistantId: c.assistant_id,
        createdAt: new Date(c.created_at).toISOString(),
        updatedAt: new Date(c.updated_at).toISOString(),
      });
    }
    for (const m of messages) {
      values.set(`messages:${m.id}`, {
        id: m.id,
        conversationId: m.conversation_id,
        role: m.role,
        content: texts[t++],
        createdAt: new Date(m.created_at).toISOString(),
        model: m.model,
        usage: m.prompt_tokens === null ? null : { promptTokens: m.prompt_tokens, completionTokens: m.completion_tokens },
        residency: m.residency,
        status: m.status,
      });
    }
    for (const a of assistants) {
      const text = a.sealed ? openedAssistantText(texts[t++]) : { name: a.name, instructions: a.instructions };
      values.set(`assistants:${a.id}`, { id: a.id, workspace: a.workspace, ...text, model: a.model, createdAt: new Date(a.created_at).toISOString() });
    }
    return slots.map((s) => {
      const value = values.get(`${s.kind}:${s.id}`);
      return { value, bytes: value === undefined ? 0 : Buffer.byteLength(JSON.stringify(value)) + 1 };
    });
  }

  /**
   * Deletes the subject's conversations and messages in scope, and their
   * private assistants when the scope takes in the private workspace. An
   * organisation's assistant is the organisation's: it stays, without the link
   * to the person who made it. For the whole account it also deletes their data
   * key, so copies in backups can no longer be decrypted.
   */
  /**
   * `slices`: the caller asks again while the answer says `more`, so one call deletes at most ERASE_SLICE
   * messages (a history of millions would hold its locks, and outlast the call, in one transaction).
   * Everything that makes the rest unreadable and stops chat for the subject comes in the first call.
   */
  async erase(userId: string, scope: string, slices = false): Promise<PrivacyErasure> {
    const erased = await this.eraseRows(userId, scope, slices ? ERASE_SLICE : null);
    // Answers being written for them stop too (billed for what was generated, to nobody after a full erasure).
    this.inFlight.stop({ userId, scope });
    return erased;
  }

  /**
   * What makes the rest unreadable and keeps nothing of the subject in chat's own records (found again, nothing
   * is left: counted once); `outbox` with the mark's first call only (it reads the whole outbox).
   */
  private async forgetOwnRecords(em: EntityManager, userId: string, outbox: boolean): Promise<{ keys: number; settings: number }> {
    const before = await em.query(`SELECT 1 FROM data_keys WHERE user_id = $1`, [userId]);
    // Crypto-shredding: whatever rows a slice leaves for the next call can no longer be read.
    await this.cipher.shred(em, userId);
    const [, settings] = await em.query(`DELETE FROM user_settings WHERE user_id = $1`, [userId]);
    await em.query(`DELETE FROM restrictions WHERE user_id = $1`, [userId]);
    // The usage of a last answer still reaches billing, for the organisation's books, without the person.
    if (outbox) await forgetSubjectInOutbox(em, userId, { unpublishedAs: ERASED_USER });
    return { keys: before.length, settings: Number(settings) };
  }

  private eraseRows(userId: string, scope: string, slice: number | null): Promise<PrivacyErasure> {
    return this.ds.transaction(async (em) => {
      const params = scope === 'all' ? [userId] : [userId, scope];
      let keys = 0;
      let settings = 0;
      if (scope === 'all') {
        // First: from here on chat refuses the subject, also the turn in flight (it sees the mark or waits for this commit).
        await lockSubject(em, userId, 'exclusive'); // a conversation being created finishes first
        // Dated anew by every slice: the mark outlives its day's housekeeping while rows of the subject are left.
        // The first call is the one that finds no mark, also none under a KEK of before a rotation.
        const first = !(await this.cipher.isErased(em, userId));
        await em.query(`INSERT INTO erased_subjects (mark, kek_id) VALUES ($1, $2) ON CONFLICT (mark) DO UPDATE SET erased_at = now(), kek_id = EXCLUDED.kek_id`, [
          this.cipher.erasureMark(userId),
          this.cipher.current.id,
        ]);
        ({ keys, settings } = await this.forgetOwnRecords(em, userId, first));
      }
      const counts = (history: number) => ({
        service: 'chat',
        affected: {
          // Messages, conversations and assistants (deleted, or an organisation's no longer linked to the person).
          'chat-history': history,
          'data-keys': keys,
          ...(scope === 'all' ? { 'policy-replica': Number(settings) } : {}),
        },
      });
      // The subject's messages in scope ($1 the subject, $2 the scope's workspace).
      const messagesInScope = `messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.user_id = $1 AND ${inScope(scope).replace('workspace', 'c.workspace')}`;
      const [, messages] = await em.query(`DELETE FROM messages WHERE id IN (SELECT m.id FROM ${messagesInScope} LIMIT ${slice ?? 'ALL'})`, params);
      // More is left (however many this slice found: another deleter may have taken some): ask again.
      if (slice !== null) {
        const [{ left }] = await em.query(`SELECT EXISTS (SELECT 1 FROM ${messagesInScope}) AS left`, params);
        if (left) return { ...counts(Number(messages)), more: true as const };
      }
      const [, conversations] = await em.query(`DELETE FROM conversations WHERE user_id = $1 AND ${inScope(scope)}`, params);
      let assistants = 0;
      if (scope === 'all' || scope === 'private') {
        const [, deleted] = await em.query(`DELETE FROM assistants WHERE created_by = $1 AND workspace = 'private'`, [userId]);
        assistants += Number(deleted);
      }
      if (scope !== 'private') {
        // created_by is NOT NULL: the id nobody has, the one events of erased subjects carry.
        const [, unlinked] = await em.query(
          `UPDATE assistants SET created_by = $${params.length + 1} WHERE created_by = $1 AND workspace <> 'private' AND ${inScope(scope)}`,
          [...params, ERASED_USER],
        );
        assistants += Number(unlinked);
      }
      const strayMessages = scope === 'all' ? ((await em.getRepository(MessageEntity).delete({ userId })).affected ?? 0) : 0;
      return counts(Number(messages) + Number(conversations) + Number(strayMessages) + assistants);
    });
  }
}
