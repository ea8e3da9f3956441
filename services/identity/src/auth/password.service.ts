import { Inject, Injectable } from '@nestjs/common';
import argon2 from 'argon2';
import { dictionary } from '@zxcvbn-ts/language-common';
import { ProblemError } from '@ally/contracts';
import { IDENTITY_CONFIG, type IdentityConfig } from '../config.js';

const COMMON = new Set<string>((dictionary['passwords-common'] as string[]).map((p) => p.toLowerCase()));

@Injectable()
export class PasswordService {
  constructor(@Inject(IDENTITY_CONFIG) private readonly config: IdentityConfig) {}

  hash(password: string): Promise<string> {
    return argon2.hash(password, {
      type: argon2.argon2id,
      memoryCost: this.config.ARGON2_MEMORY_KIB,
      timeCost: this.config.ARGON2_TIME_COST,
      parallelism: 1,
    });
  }

  /** A hash made with other costs than configured now (they were raised): made anew at the next sign-in. */
  isStale(hash: string): boolean {
    try {
      return argon2.needsRehash(hash, { memoryCost: this.config.ARGON2_MEMORY_KIB, timeCost: this.config.ARGON2_TIME_COST, parallelism: 1 });
    } catch {
      return false;
    }
  }

  async verify(hash: string | null, password: string): Promise<boolean> {
    if (!hash) return false;
    try {
      return await argon2.verify(hash, password);
    } catch {
      return false;
    }
  }

  /** Length is checked by the schema; here: not a known common password, not built from the user's own details. */
  assertAcceptable(password: string, personal: string[]): void {
    const lower = password.toLowerCase();
    const core = lower.replace(/[\d\W_]+$/u, '').replace(/^[\d\W_]+/u, '');
    const repeated = /^(.{1,4})\1+$/u.test(lower);
    if (COMMON.has(lower) || COMMON.has(core) || repeated) {
      throw weak('is too common or too easy to guess');
    }
    for (const p of personal.map((x) => x.toLowerCase()).filter((x) => x.length >= 4)) {
      if (lower.includes(p) && lower.length - p.length < 6) throw weak('must not be based on your name or email address');
    }
  }
}

const weak = (message: string) =>
  new ProblemError(400, `Invalid request body: password (${message})`, { errors: [{ field: 'password', message }] });
