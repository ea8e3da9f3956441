import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { ProblemError, type Actor, type ExportDownload } from '@ally/contracts';
import { AuditTrail } from '../audit/audit-trail.service.js';
import { PackageCipher } from '../common/package-cipher.js';
import { ExportExpired, ExportNotReady, ExportVoided, PrivacyRequestNotFound } from '../common/privacy-errors.js';
import { SubjectHasher } from '../common/subject-hash.js';
import { zipFiles } from './zip-archive.js';

/** Raw bytes per part: base64 keeps each reply well under NATS's 1 MiB default payload. */
export const PART_BYTES = 512 * 1024;
/** How long an assembled package stays in memory for the parts that follow its description. */
const CACHE_MS = 60_000;
/** Plaintext held at most, all packages together: the oldest goes first. */
const CACHE_BYTES = 64 * 1024 * 1024;
/** Packages one replica assembles at once (seconds of CPU each for a large one): more wait their turn as a 503. */
const ASSEMBLING_AT_ONCE = 2;

interface Built {
  body: Buffer;
  meta: ExportDownload;
  at: number;
  /** Forgets it after CACHE_MS, whether or not another download comes: plaintext never outlives its minute. */
  expiry: NodeJS.Timeout;
}

/**
 * Hands the subject their package: decrypted and assembled (ZIP or one JSON
 * document) only in memory, in parts the gateway joins. Only the subject
 * themself can download it, and only until it expires.
 */
@Injectable()
export class DownloadsService implements OnModuleDestroy {
  private readonly cache = new Map<string, Built>();
  /** Assemblies under way: a download asking for one joins it instead of assembling the package again beside it. */
  private readonly assembling = new Map<string, Promise<Built>>();

  constructor(
    private readonly ds: DataSource,
    private readonly cipher: PackageCipher,
    private readonly audit: AuditTrail,
    private readonly hasher: SubjectHasher,
  ) {}

  /** `recorded`: a download begins (the audit trail says so); not for a HEAD request, which only asks what it would get. */
  async describe(actor: Actor, id: string, format: 'zip' | 'json', { recorded }: { recorded: boolean }): Promise<ExportDownload> {
    const built = await this.build(actor, id, format, recorded, true);
    return built.meta;
  }

  async part(actor: Actor, id: string, format: 'zip' | 'json', part: number): Promise<{ data: string }> {
    // A part is never turned away: the gateway has begun the download (its headers are sent), and one refused would cut it off.
    const built = await this.build(actor, id, format, false, false);
    if (part >= built.meta.parts) throw new PrivacyRequestNotFound();
    return { data: built.body.subarray(part * PART_BYTES, (part + 1) * PART_BYTES).toString('base64') };
  }

  /** `capped`: a new assembly waits its turn as a 503 when others fill the replica (a download's first call only). */
  private async build(actor: Actor, id: string, format: 'zip' | 'json', audit: boolean, capped: boolean): Promise<Built> {
    const [row] = await this.ds.query(
      `SELECT r.id, r.user_id, r.type, r.status, r.wrapped_key, r.download_until, p.sealed IS NOT NULL AS sealed, p.expires_at
         FROM requests r LEFT JOIN export_packages p ON p.request_id = r.id WHERE r.id = $1`,
      [id],
    );
    if (!row || row.user_id !== actor.userId) throw new PrivacyRequestNotFound();
    // Their own request of another kind (an erasure, a restriction): it exists, and makes no package.
    if (row.type !== 'access' && row.type !== 'portability') {
      throw new ProblemError(409, `A ${row.type} request has no export package: only access and portability requests have one`);
    }
    if (row.status === 'failed') throw new ProblemError(409, 'This request failed, so it has no export package; file a new request');
    if (row.status !== 'completed') throw new ExportNotReady();
    // An erasure voids earlier packages and clears their download date; expiry keeps it.
    if (!row.sealed && !row.wrapped_key && !row.download_until) throw new ExportVoided();
    // The package's own date, or (its row gone by then) the one the subject was given.
    const until = new Date(row.expires_at ?? row.download_until);
    if (!row.sealed || !row.wrapped_key || until <= new Date()) throw new ExportExpired(until);
    const key = `${id}:${format}:${actor.userId}`;
    const cached = this.cache.get(key);
    let built: Built;
    if (cached && Date.now() - cached.at < CACHE_MS) {
      built = cached;
    } else {
      let pending = this.assembling.get(key);
      if (!pending) {
        if (capped && this.assembling.size >= ASSEMBLING_AT_ONCE) {
          throw new ProblemError(503, 'Other export packages are being put together right now; try again in a few seconds', { retryAfter: 5 });
        }
        pending = this.assemble(key, id, format, row.wrapped_key).finally(() => this.assembling.delete(key));
        this.assembling.set(key, pending);
      }
      built = await pending;
    }
    if (audit) {
      const subjectHash = this.hasher.hash(actor.userId);
      await this.audit.record({ actor: `subject:${subjectHash}`, action: 'export.downloaded', requestId: id, subjectHash, details: { format, bytes: built.meta.size } });
    }
    return built;
  }

  /** Decrypts and puts the package together once, kept for the parts that follow (and downloads that joined). */
  private async assemble(key: string, id: string, format: 'zip' | 'json', wrappedKey: Buffer): Promise<Built> {
    // The package itself is read once per assembly, not once per part (the row is checked every time: an erasure voids at once).
    const [stored] = await this.ds.query(`SELECT sealed FROM export_packages WHERE request_id = $1`, [id]);
    // Gone since the row was read: an erasure voided it, or it expired that moment.
    if (!stored?.sealed) throw new ExportVoided();
    const plain = gunzipSync(this.cipher.open(wrappedKey, id, stored.sealed, 'package'));
    const pkg = JSON.parse(plain.toString('utf8')) as { createdAt: string; files: Record<string, string> };
    const body =
      format === 'zip'
        ? await zipFiles(pkg.files, new Date(pkg.createdAt))
        : Buffer.from(JSON.stringify({ files: Object.fromEntries(Object.entries(pkg.files).map(([name, text]) => [name, name.endsWith('.json') ? JSON.parse(text) : text])) }), 'utf8');
    const meta: ExportDownload = {
      filename: `ally-export-${id}.${format}`,
      contentType: format === 'zip' ? 'application/zip' : 'application/json',
      size: body.length,
      parts: Math.max(1, Math.ceil(body.length / PART_BYTES)),
      sha256: createHash('sha256').update(body).digest('hex'),
    };
    const built = { body, meta, at: Date.now(), expiry: setTimeout(() => this.forget(key), CACHE_MS).unref() };
    this.forget(key);
    this.cache.set(key, built);
    this.keepWithin(CACHE_BYTES);
    return built;
  }

  private forget(key: string): void {
    clearTimeout(this.cache.get(key)?.expiry);
    this.cache.delete(key);
  }

  /** Drops the oldest packages (a Map iterates in insertion order) until the rest fit; the newest stays, whatever its size. */
  private keepWithin(bytes: number): void {
    let total = 0;
    for (const v of this.cache.values()) total += v.body.length;
    for (const [k, v] of this.cache) {
      if (total <= bytes || this.cache.size === 1) break;
      total -= v.body.length;
      this.forget(k);
    }
  }

  /** At shutdown: no timer keeps a package (or the process) alive. */
  onModuleDestroy(): void {
    for (const key of [...this.cache.keys()]) this.forget(key);
  }
}
