import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ProblemError } from './problem.js';
import { idSchema } from './validation.js';
import { rpc } from './rpc.js';

/** Which data a data-subject request covers: everything, the private workspace, or one organisation (its id in lower case, as workspaces are). */
const SCOPE_MESSAGE = "must be 'all', 'private' or an organisation id";
export const privacyScopeSchema = z.union([z.literal('all'), z.literal('private'), idSchema(SCOPE_MESSAGE)], { error: SCOPE_MESSAGE });

export const privacySubjectInput = z.strictObject({
  userId: z.uuid(),
  scope: privacyScopeSchema.default('all'),
  /** The data-subject request this belongs to, for the audit trail. */
  requestId: z.uuid().optional(),
  /** Exports come in pages so no answer outgrows a NATS message (1 MiB by default): 0, then each answer's `nextPage`. */
  page: z.union([z.number().int().min(0), z.string().min(1).max(200)]).default(0),
  /**
   * An erasure: the caller asks again while an answer says `more`, so a service may bound the work of one call
   * (a very long history deleted in slices, each a transaction of its own). Without it, all in one call.
   */
  slices: z.boolean().optional(),
});

export interface PrivacyExport {
  service: string;
  /** One entry per data category: what is held, as JSON. */
  categories: Record<string, unknown>;
  /** Ask again with this page for more; absent on the last page. Arrays of later pages continue those of earlier ones. */
  nextPage?: number | string;
}

/**
 * Joins the pages of one service's export: arrays (at the top of a category
 * or one level down) are concatenated, everything else comes from the first page.
 */
export function mergeExportPages(pages: PrivacyExport[]): PrivacyExport {
  const categories: Record<string, unknown> = {};
  for (const page of pages) {
    for (const [name, value] of Object.entries(page.categories)) {
      const seen = categories[name];
      if (seen === undefined) categories[name] = value;
      else if (Array.isArray(seen) && Array.isArray(value)) seen.push(...value);
      else if (seen && value && typeof seen === 'object' && typeof value === 'object') {
        for (const [k, v] of Object.entries(value)) {
          const before = (seen as Record<string, unknown>)[k];
          if (Array.isArray(before) && Array.isArray(v)) before.push(...v);
          else if (before === undefined) (seen as Record<string, unknown>)[k] = v;
        }
      }
    }
  }
  return { service: pages[0]?.service ?? '', categories };
}

/**
 * UTF-8 bytes of JSON of one page's items: with the envelope, well inside NATS's 1 MiB. A page stops before
 * the item that would take it over this, but holds one item at least: the largest single item (a chat message
 * of its most characters, each escaped to `\uXXXX` at worst) stays well under 1 MiB with the envelope.
 */
export const EXPORT_PAGE_BYTES = 640 * 1024;

/** One piece of an export: an element of a category's list (or of a list one level down), or a value kept whole. */
type Piece = { category: string; key?: string; index: number; element?: unknown; value?: unknown; emptyList?: true };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function piecesOf(categories: Record<string, unknown>): Piece[] {
  const pieces: Piece[] = [];
  const list = (category: string, items: unknown[], key?: string) => {
    if (items.length === 0) pieces.push({ category, key, index: 0, emptyList: true });
    items.forEach((element, index) => pieces.push({ category, key, index, element }));
  };
  for (const [category, value] of Object.entries(categories)) {
    if (Array.isArray(value)) list(category, value);
    else if (isRecord(value) && Object.values(value).some(Array.isArray)) {
      for (const [key, v] of Object.entries(value)) Array.isArray(v) ? list(category, v, key) : pieces.push({ category, key, index: 0, value: v });
    } else pieces.push({ category, index: 0, value });
  }
  return pieces;
}

/**
 * A page token: the list a page starts in, the index in it (so a list that grew meanwhile moves no other list's
 * place) and a fingerprint of the element there (so one whose older rows went meanwhile, a retention run's
 * deletions, is continued at that element, not past as many rows as went).
 */
type Place = [category: string, key: string | null, index: number, fingerprint?: string];

const fingerprintOf = (element: unknown): string => createHash('sha256').update(JSON.stringify(element ?? null)).digest('base64url').slice(0, 16);

function startOf(pieces: Piece[], page: number | string, service: string): number {
  if (page === 0) return 0;
  let place: Place;
  try {
    place = JSON.parse(Buffer.from(String(page), 'base64url').toString('utf8')) as Place;
    if (!Array.isArray(place) || typeof place[0] !== 'string' || typeof place[2] !== 'number') throw new Error('not a place');
  } catch {
    throw new ProblemError(400, `Not an export page ${service} gave out: start again at page 0`);
  }
  const [category, key, index, fingerprint] = place;
  const inList = (p: Piece) => p.category === category && (p.key ?? null) === key;
  if (typeof fingerprint === 'string') {
    // Rows deleted before it move the element towards the list's start, never past its old place.
    for (let at = pieces.findLastIndex((p) => inList(p) && p.index <= index); at >= 0 && inList(pieces[at]); at--) {
      if ('element' in pieces[at] && fingerprintOf(pieces[at].element) === fingerprint) return at;
    }
  }
  const at = pieces.findIndex((p) => inList(p) && p.index >= index);
  if (at >= 0) return at;
  // The list is shorter now than where the page would start: what follows it.
  const after = pieces.findLastIndex((p) => p.category === category && (p.key ?? null) === key);
  return after >= 0 ? after + 1 : pieces.length;
}

/**
 * One page of an export a service builds whole (`exportPage(await build(), page)`): its pieces (list
 * elements, at the top of a category or one level down, and values kept whole) from the page's place on,
 * as many as fit EXPORT_PAGE_BYTES of UTF-8 (one at least), shaped so that `mergeExportPages` joins the pages
 * into `full` again. A token names a list and an index in it: rows added to a list (its newest last) move no
 * other page's place.
 */
export function exportPage(full: PrivacyExport, page: number | string): PrivacyExport {
  const pieces = piecesOf(full.categories);
  const first = startOf(pieces, page, full.service);
  const categories: Record<string, unknown> = {};
  let bytes = 0;
  let at = first;
  for (; at < pieces.length; at++) {
    const piece = pieces[at];
    const size = Buffer.byteLength(JSON.stringify(piece.element ?? piece.value ?? null)) + 1;
    if (at > first && bytes + size > EXPORT_PAGE_BYTES) break;
    bytes += size;
    const holder = piece.key === undefined ? categories : ((categories[piece.category] ??= {}) as Record<string, unknown>);
    const name = piece.key ?? piece.category;
    if (piece.emptyList) holder[name] ??= [];
    else if ('element' in piece) ((holder[name] ??= []) as unknown[]).push(piece.element);
    else holder[name] = piece.value;
  }
  const next = pieces[at];
  const place: Place | undefined = next && ('element' in next ? [next.category, next.key ?? null, next.index, fingerprintOf(next.element)] : [next.category, next.key ?? null, next.index]);
  const nextPage = place && Buffer.from(JSON.stringify(place)).toString('base64url');
  return { service: full.service, categories, ...(nextPage ? { nextPage } : {}) };
}

/** Whom a record kept after its subject's erasure names (usage the organisation's books keep, a customer's creator): nobody. */
export const ERASED_USER = '00000000-0000-0000-0000-000000000000';

export interface PrivacyErasure {
  service: string;
  /** Rows deleted (or anonymised) per data category, by this call. */
  affected: Record<string, number>;
  /** Rows are left (asked in `slices`): ask again; the counts of the calls add up. */
  more?: true;
}

/**
 * Whether identity has an account with this id: privacy asks before it places a legal hold, so a mistyped id is
 * refused instead of holding nothing. Under `.privacy.` like the others, so the gateway cannot ask it.
 */
export const subjectExistsRpc = rpc<{ exists: boolean }>()('ally.rpc.identity.privacy.subject', z.strictObject({ userId: z.uuid() }), { authenticated: false });

/** The events of a request that services act on by themselves (Art. 18, Art. 21): privacy asks whether they did. */
export const privacyEventHandledInput = z.strictObject({
  eventId: z.uuid(),
  type: z.enum(['privacy.subject.restricted', 'privacy.subject.objected']),
});

export interface PrivacyEventHandled {
  service: string;
  /** Every consumer of the service that takes this type has committed its effect (with its inbox row). */
  handled: boolean;
  /** How many of its consumers take the type: 0 where the service does nothing with it. */
  consumers: number;
}

/** The RPCs every service holding personal data answers: `ally.rpc.<svc>.privacy.export` / `.erase` / `.handled`. */
export const privacyRpcs = (service: string) => ({
  export: rpc<PrivacyExport>()(`ally.rpc.${service}.privacy.export`, privacySubjectInput, { authenticated: false }),
  erase: rpc<PrivacyErasure>()(`ally.rpc.${service}.privacy.erase`, privacySubjectInput, { authenticated: false }),
  handled: rpc<PrivacyEventHandled>()(`ally.rpc.${service}.privacy.handled`, privacyEventHandledInput, { authenticated: false }),
});
