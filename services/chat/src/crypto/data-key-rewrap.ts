import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ERASURE_MARK_EXPIRES } from '../retention.rules.js';
import { ContentCipher } from './content-cipher.service.js';

/** Data keys one transaction re-wraps. */
const BATCH = 500;

export interface RewrapReport {
  /** The fingerprint of the KEK everything was wrapped under. */
  kekId: string;
  rewrapped: number;
  /** Keys still not under CHAT_KEK: written meanwhile by a replica with another KEK, or held by another run. */
  left: number;
  /** Erasure marks keyed by an earlier KEK (or before KEKs were told apart), and when the last of them expires. */
  earlierMarks: number;
  earlierMarksUntil: Date | null;
}

/**
 * The second half of a CHAT_KEK rotation: every data key not yet wrapped under
 * the current KEK is opened with the key that wrapped it and wrapped anew, a
 * batch per transaction, so the earlier KEK can go. Replicas serve meanwhile
 * (a turn's share lock on the key does not conflict with this update); runs at
 * the same time share the work (SKIP LOCKED). Erasure marks cannot be keyed
 * anew (they name nobody): the earlier KEK stays among CHAT_KEK_UNWRAP_ONLY
 * until the last mark it keyed has expired, which the report dates.
 */
@Injectable()
export class DataKeyRewrap {
  constructor(
    private readonly ds: DataSource,
    private readonly cipher: ContentCipher,
  ) {}

  async run(): Promise<RewrapReport> {
    const current = this.cipher.current.id;
    // Run where the rollout has not yet reached (a pod of the old ReplicaSet), it would wrap everything back.
    const [newer]: { id: string; first_used_at: Date }[] = await this.ds.query(
      `SELECT id, first_used_at FROM keks WHERE first_used_at > (SELECT first_used_at FROM keks WHERE id = $1) ORDER BY first_used_at DESC LIMIT 1`,
      [current],
    );
    if (newer) {
      throw new Error(
        `this process runs with an older CHAT_KEK (id ${current}) than replicas started since ${newer.first_used_at.toISOString()} (id ${newer.id}): run it in a chat pod started with the new key`,
      );
    }
    let after = '00000000-0000-0000-0000-000000000000';
    let rewrapped = 0;
    for (;;) {
      const rows: { user_id: string; wrapped: Buffer }[] = await this.ds.transaction(async (em) => {
        const batch: { user_id: string; wrapped: Buffer }[] = await em.query(
          `SELECT user_id, wrapped FROM data_keys WHERE user_id > $1 AND kek_id IS DISTINCT FROM $2 ORDER BY user_id LIMIT ${BATCH} FOR NO KEY UPDATE SKIP LOCKED`,
          [after, current],
        );
        const opened = batch.flatMap((r) => {
          try {
            return [{ userId: r.user_id, wrapped: this.cipher.wrap(r.user_id, this.cipher.unwrap(r.user_id, r.wrapped)) }];
          } catch {
            return []; // the start refused keys under a KEK not configured: written since by another replica, counted as left
          }
        });
        if (opened.length) {
          await em.query(
            `UPDATE data_keys d SET wrapped = v.wrapped, kek_id = $3 FROM unnest($1::uuid[], $2::bytea[]) AS v(user_id, wrapped) WHERE d.user_id = v.user_id`,
            [opened.map((o) => o.userId), opened.map((o) => o.wrapped), current],
          );
        }
        rewrapped += opened.length;
        return batch;
      });
      if (rows.length < BATCH) break;
      after = rows.at(-1)!.user_id;
    }
    const [{ left }] = await this.ds.query(`SELECT count(*)::int AS left FROM data_keys WHERE kek_id IS DISTINCT FROM $1`, [current]);
    const [marks]: { n: number; until: Date | null }[] = await this.ds.query(
      `SELECT count(*)::int AS n, max(${ERASURE_MARK_EXPIRES}) AS until FROM erased_subjects WHERE kek_id IS DISTINCT FROM $1`,
      [current],
    );
    return { kekId: current, rewrapped, left, earlierMarks: marks.n, earlierMarksUntil: marks.until };
  }
}

/** What the operator reads: what moved, what is left, and whether the earlier KEK may go yet. */
export function describeRewrap(r: RewrapReport): string {
  const keys = `re-wrapped ${r.rewrapped} data keys under CHAT_KEK (id ${r.kekId})`;
  if (r.left) {
    return `${keys}; ${r.left} are still under another key (written meanwhile by a replica with another KEK, or held by another run): run this again once every replica runs with this CHAT_KEK`;
  }
  if (r.earlierMarks) {
    return `${keys}; every data key is under it now. ${r.earlierMarks} erasure marks were keyed by an earlier CHAT_KEK: keep CHAT_KEK_UNWRAP_ONLY until ${r.earlierMarksUntil!.toISOString()}, when the last of them expires`;
  }
  return `${keys}; every data key is under it now, and no erasure mark needs an earlier key: CHAT_KEK_UNWRAP_ONLY may be removed`;
}
