import { spawn, type ChildProcess } from 'node:child_process';
import type { ServiceDefinition } from '@ally/platform';
import type { TestEnv } from '@ally/testing';

export interface Proc { p: ChildProcess; out: string[]; exited: Promise<{ code: number | null; signal: string | null; at: number }>; port?: number; ready: Promise<void>; }

export function spawnService(env: TestEnv, def: ServiceDefinition<any>, overrides: Record<string, string> = {}, waitStarted = true): Proc {
  const e = { ...process.env, ...env.envFor(def, { LOG_LEVEL: 'info', ...overrides }) };
  delete (e as any).NODE_OPTIONS;
  const p = spawn('node', [`services/${def.name}/dist/main.js`], { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => (resolveReady = r));
  const proc: Proc = { p, out, ready, exited: new Promise((r) => p.once('exit', (code, signal) => r({ code, signal, at: Date.now() }))) };
  let buf = '';
  const onData = (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      out.push(line);
      if (/ started"/.test(line)) {
        try { proc.port = JSON.parse(line).port; } catch {}
        resolveReady();
      }
    }
  };
  p.stdout!.on('data', onData);
  p.stderr!.on('data', (d) => out.push('ERR ' + d.toString()));
  return proc;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
