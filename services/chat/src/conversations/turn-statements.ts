import { OUTBOX_COLUMNS } from '@ally/messaging';
import { policyColumns, type PolicyRows } from '../policy/policy.service.js';

/** What `TURN_SQL` answers: the conversation and everything a turn in it needs. */
export interface TurnRow extends PolicyRows {
  id: string;
  workspace: string;
  wrapped: Buffer | null;
  /** `sealed` (base64) for a private assistant, under the caller's key; `instructions` for an organisation's. */
  assistant: { instructions: string | null; sealed: string | null; model: string | null } | null;
  history: { role: 'user' | 'assistant'; content: string }[];
}

/**
 * The most history a turn reads: trimming keeps the newest messages that fit
 * the model's window, so older ones are never sent, only read and decrypted
 * (work that grew with the conversation, and a json_agg past 1 GB fails).
 * A token is at least one byte, and rarely over 32: a window's worth of
 * messages is well inside `bytes` (`historyBytes`) unless they are extremely repetitive.
 */
export const HISTORY_MESSAGES = 2_000;
export const historyBytes = (largestContextWindow: number) => largestContextWindow * 32;

/**
 * One read for a turn ($1 conversation, $2 the caller, $3 the caller's erasure marks (one per KEK), $4 and $5 the history's
 * bytes and messages at most): the conversation, only if it is the caller's; the wrapped data key; the
 * routing policy's replica rows; the assistant, if usable; the newest history, sealed under the owner's key
 * (a conversation holds only its owner's messages).
 */
export const TURN_SQL = `
  SELECT c.id, c.workspace,
    (SELECT wrapped FROM data_keys WHERE user_id = $2) AS wrapped,
    ${policyColumns('$2', 'c.workspace', '$3::bytea[]')},
    (SELECT json_build_object('instructions', a.instructions, 'sealed', encode(a.sealed, 'base64'), 'model', a.model) FROM assistants a
      WHERE a.id = c.assistant_id AND a.workspace = c.workspace AND (c.workspace <> 'private' OR a.created_by = $2)) AS assistant,
    (SELECT coalesce(json_agg(json_build_object('role', h.role, 'content', encode(h.content_enc, 'base64')) ORDER BY h.created_at, h.id), '[]')
      FROM (SELECT n.*, sum(octet_length(n.content_enc)) OVER (ORDER BY n.created_at DESC, n.id DESC) AS bytes_to_here
              FROM (SELECT m.role, m.content_enc, m.created_at, m.id FROM messages m
                     WHERE m.conversation_id = c.id AND m.status = 'complete' ORDER BY m.created_at DESC, m.id DESC LIMIT $5) n) h
     WHERE h.bytes_to_here <= $4::bigint) AS history
  FROM conversations c
  WHERE c.id = $1 AND c.user_id = $2`;

/**
 * One write for a turn: question, answer, the conversation's time and the usage
 * event; nothing when the data key or the conversation is gone (an erasure won).
 * The key is locked (FOR KEY SHARE): an erasure deleting it right now is waited
 * for and then seen, or waits for this save, whose usage event it then rewrites.
 * The conversation's row is the turn's clock ($6 is now): each save moves it on
 * by at least two milliseconds, waiting for a save in the same conversation
 * that holds it, so the question and its answer take the next two and a turn
 * answered in parallel is stored before or after this one, never between.
 */
export const SAVE_SQL = `
  WITH turn AS (
    UPDATE conversations SET updated_at = greatest($6::timestamptz + interval '1 ms', updated_at + interval '2 ms')
     WHERE id = $3::uuid AND EXISTS (SELECT 1 FROM data_keys WHERE user_id = $4::uuid FOR KEY SHARE)
    RETURNING updated_at AS answered_at
  ), saved AS (
    INSERT INTO messages (id, conversation_id, user_id, role, content_enc, model, prompt_tokens, completion_tokens, residency, status, created_at)
    SELECT m.* FROM turn, LATERAL (VALUES
      ($1::uuid, $3::uuid, $4::uuid, 'user', $5::bytea, NULL::text, NULL::int, NULL::int, NULL::jsonb, 'complete', turn.answered_at - interval '1 ms'),
      ($2::uuid, $3::uuid, $4::uuid, 'assistant', $7::bytea, $8::text, $9::int, $10::int, $11::jsonb, $12::text, turn.answered_at)) AS m
    RETURNING 1
  ), usage AS (
    INSERT INTO outbox (${OUTBOX_COLUMNS}) SELECT $13::uuid, $14, $15, $16::jsonb WHERE EXISTS (SELECT 1 FROM saved)
  )
  SELECT (SELECT count(*)::int FROM saved) AS saved, (SELECT answered_at FROM turn) AS "answeredAt"`;
