import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './nats-server.js';

const BIN = '/usr/lib/postgresql/15/bin';

/**
 * A private Postgres 15 for tests that stop and start the database; the shared
 * server on 5432 is never touched. Runs as the postgres user (Postgres refuses
 * root), trust auth, on a free port; keeps its data across restarts.
 */
export class PrivatePostgres {
  readonly dir = mkdtempSync(join(tmpdir(), 'ally-pg-'));
  port = 0;

  /** The superuser URL, for `createTestEnv({ pgUrl })`. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  async init(): Promise<void> {
    this.port = await freePort();
    chmodSync(this.dir, 0o777);
    execFileSync('chown', ['postgres:postgres', this.dir]);
    this.asPostgres(`${BIN}/initdb`, '-D', this.dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync');
    await this.start();
  }

  async start(): Promise<void> {
    const opts = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
    this.asPostgres(`${BIN}/pg_ctl`, '-D', this.dataDir, '-l', join(this.dir, 'log'), '-w', '-o', opts, 'start');
  }

  /** `fast` disconnects clients and shuts down cleanly; `immediate` is a crash. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    this.asPostgres(`${BIN}/pg_ctl`, '-D', this.dataDir, '-w', '-m', mode, 'stop');
  }

  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private get dataDir(): string {
    return join(this.dir, 'data');
  }

  private asPostgres(...args: string[]): string {
    return execFileSync('runuser', ['-u', 'postgres', '--', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }
}
