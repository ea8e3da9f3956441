import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait-for.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export interface PrivateNatsOptions {
  /** A nats-server config file (e.g. with users and permissions); the port, host and store given here win over it. */
  configFile?: string;
  /** Extra environment for nats-server, e.g. the `$VARIABLES` a config file refers to. */
  env?: Record<string, string>;
}

/**
 * A private nats-server with JetStream for tests that stop and start NATS;
 * the shared server on 4222 is never touched. Keeps its store across restarts.
 */
export class PrivateNatsServer {
  private proc?: ChildProcess;
  readonly storeDir = mkdtempSync(join(tmpdir(), 'ally-nats-'));
  port = 0;

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts the server; one already running stays as it is (a second on its port would fail, and leave the first unstopped). */
  async start(extraArgs: string[] = [], opts: PrivateNatsOptions = {}): Promise<void> {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) return;
    if (!this.port) this.port = await freePort();
    const config = opts.configFile ? ['-c', opts.configFile] : [];
    const proc = spawn('nats-server', [...config, '-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir, ...extraArgs], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
    });
    this.proc = proc;
    // A server that refuses its configuration says why on stderr and exits: report that, not a time-out.
    let stderr = '';
    proc.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-2000)));
    await waitFor(
      () =>
        new Promise<boolean>((resolve, reject) => {
          if (proc.exitCode !== null) return reject(new Error(`nats-server exited with code ${proc.exitCode}: ${stderr.trim()}`));
          const sock = connect(this.port, '127.0.0.1', () => {
            sock.end();
            resolve(true);
          });
          sock.on('error', () => resolve(false));
        }),
      `nats-server on port ${this.port}`,
    );
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
    this.proc = undefined;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}
