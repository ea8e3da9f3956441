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

/** JSON bytes of one page's items: with the envelope, well inside NATS's 1 MiB. */
const EXPORT_PAGE_BYTES = 640 * 1024;

/** One piece of an export: an element of a category's list (or of a list one level down), or a value kept whole. */
type Piece = { category: string; key?: string; element?: unknown; value?: unknown; emptyList?: true };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function piecesOf(categories: Record<string, unknown>): Piece[] {
  const pieces: Piece[] = [];
  const list = (category: string, items: unknown[], key?: string) => {
    if (items.length === 0) pieces.push({ category, key, emptyList: true });
    for (const element of items) pieces.push({ category, key, element });
  };
  for (const [category, value] of Object.entries(categories)) {
    if (Array.isArray(value)) list(category, value);
    else if (isRecord(value) && Object.values(value).some(Array.isArray)) {
      for (const [key, v] of Object.entries(value)) Array.isArray(v) ? list(category, v, key) : pieces.push({ category, key, value: v });
    } else pieces.push({ category, value });
  }
  return pieces;
}

/**
 * One page of an export a service builds whole (`exportPage(await build(), page)`): its pieces (list
 * elements, at the top of a category or one level down, and values kept whole) from the page's index on,
 * as many as fit EXPORT_PAGE_BYTES (one at least), shaped so that `mergeExportPages` joins the pages into
 * `full` again. Page tokens are piece indexes; the lists must keep their order between calls (new rows last).
 */
export function exportPage(full: PrivacyExport, page: number | string): PrivacyExport {
  if (typeof page !== 'number') throw new ProblemError(400, `Not an export page ${full.service} gave out: start again at page 0`);
  const pieces = piecesOf(full.categories);
  const categories: Record<string, unknown> = {};
  let bytes = 0;
  let at = page;
  for (; at < pieces.length; at++) {
    const piece = pieces[at];
    const size = JSON.stringify(piece.element ?? piece.value ?? null).length + 1;
    if (at > page && bytes + size > EXPORT_PAGE_BYTES) break;
    bytes += size;
    const holder = piece.key === undefined ? categories : ((categories[piece.category] ??= {}) as Record<string, unknown>);
    const name = piece.key ?? piece.category;
    if (piece.emptyList) holder[name] ??= [];
    else if ('element' in piece) ((holder[name] ??= []) as unknown[]).push(piece.element);
    else holder[name] = piece.value;
  }
  return { service: full.service, categories, ...(at < pieces.length ? { nextPage: at } : {}) };
}

export interface PrivacyErasure {
  service: string;
  /** Rows deleted (or anonymised) per data category. */
  affected: Record<string, number>;
}

/**
 * Whether identity has an account with this id: privacy asks before it places a legal hold, so a mistyped id is
 * refused instead of holding nothing. Under `.privacy.` like the others, so the gateway cannot ask it.
 */
export const subjectExistsRpc = rpc<{ exists: boolean }>()('ally.rpc.identity.privacy.subject', z.strictObject({ userId: z.uuid() }), { authenticated: false });

/** The RPCs every service holding personal data answers: `ally.rpc.<svc>.privacy.export` / `.erase`. */
export const privacyRpcs = (service: string) => ({
  export: rpc<PrivacyExport>()(`ally.rpc.${service}.privacy.export`, privacySubjectInput, { authenticated: false }),
  erase: rpc<PrivacyErasure>()(`ally.rpc.${service}.privacy.erase`, privacySubjectInput, { authenticated: false }),
});
