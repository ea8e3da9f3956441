import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { PrivacyRpc, type Actor } from '@ally/contracts';
import { RpcClient } from '@ally/messaging';
import { createTestEnv, waitFor, type RunningService, type TestEnv } from '@ally/testing';
import { privacyService } from '../src/privacy.service.js';
import { runArgs } from '../src/retention/kubernetes-job.launcher.js';
import { FakeServices } from './fake-services.js';

const hasClient = await import('@kubernetes/client-node').then(
  () => true,
  () => false,
);
const compliance: Actor = { userId: randomUUID(), platformRoles: ['compliance'] };

/** The CronJob as k8s/base/retention-cronjob.yaml declares it (trimmed). */
const CRONJOB = {
  apiVersion: 'batch/v1',
  kind: 'CronJob',
  metadata: { name: 'ally-retention', namespace: 'ally', uid: 'c0ffee00-0000-4000-8000-000000000001' },
  spec: {
    schedule: '30 3 * * *',
    jobTemplate: {
      metadata: { labels: { 'app.kubernetes.io/name': 'privacy-retention' } },
      spec: {
        backoffLimit: 2,
        template: {
          metadata: { labels: { 'app.kubernetes.io/name': 'privacy-retention' } },
          spec: {
            serviceAccountName: 'privacy-retention',
            restartPolicy: 'Never',
            containers: [{ name: 'retention', image: 'ally/privacy:1.0', command: ['node', 'services/privacy/dist/main.js', 'retention-run'] }],
          },
        },
      },
    },
  },
};

interface Seen {
  method: string;
  url: string;
  authorization?: string;
  body: any;
}

/** Answers like the Kubernetes API server for the two calls privacy makes, over TLS with the service account's CA. */
function fakeApiServer(dir: string, seen: Seen[]): Promise<Server> {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'ca.crt'), '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const server = createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'ca.crt')) }, (req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const body = raw ? JSON.parse(raw) : undefined;
      seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization, body });
      res.setHeader('content-type', 'application/json');
      if (req.headers.authorization !== 'Bearer sa-token-123') {
        res.statusCode = 401;
        return res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Unauthorized', code: 401 }));
      }
      if (req.method === 'GET' && req.url === '/apis/batch/v1/namespaces/ally/cronjobs/ally-retention') return res.end(JSON.stringify(CRONJOB));
      if (req.method === 'POST' && req.url === '/apis/batch/v1/namespaces/ally/jobs') {
        res.statusCode = 201;
        return res.end(JSON.stringify({ ...body, metadata: { ...body.metadata, uid: randomUUID(), creationTimestamp: new Date().toISOString() } }));
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 }));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('retention runs in Kubernetes', () => {
  it('passes the run id to the template command line', () => {
    expect(runArgs(['node', 'main.js', 'retention-run'], undefined, 'r1')).toEqual(['--run-id', 'r1']);
    expect(runArgs(['node', 'main.js'], ['retention-run', '--scheduled'], 'r1')).toEqual(['retention-run', '--run-id', 'r1']);
    expect(runArgs(undefined, undefined, 'r1')).toEqual(['retention-run', '--run-id', 'r1']);
  });

  (hasClient ? describe : describe.skip)('through @kubernetes/client-node with in-cluster config', () => {
    let env: TestEnv;
    let privacy: RunningService;
    let api: Server;
    let rpc: RpcClient;
    let fakes: FakeServices;
    const seen: Seen[] = [];
    const dir = mkdtempSync(join(tmpdir(), 'ally-sa-'));

    beforeAll(async () => {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'token'), 'sa-token-123');
      writeFileSync(join(dir, 'namespace'), 'ally');
      api = await fakeApiServer(dir, seen);
      env = await createTestEnv();
      privacy = await env.start(privacyService, {
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: String((api.address() as { port: number }).port),
        K8S_SERVICEACCOUNT_DIR: dir,
        PRIVACY_POLL_MS: '50',
      });
      rpc = new RpcClient(await env.nats(), env.prefix);
      await rpc.connect();
      fakes = new FakeServices(await env.nats(), env.prefix).listen(['identity', 'chat', 'billing', 'notify'], ['retention']);
    });

    afterAll(async () => {
      fakes?.close();
      await rpc?.close();
      await env?.close();
      api?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('creates a Job from the CronJob template that runs exactly the queued run, which the Job then executes', async () => {
      const started = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true }, { actor: compliance });
      expect(started).toMatchObject({ status: 'queued', launchedAs: 'kubernetes-job', jobName: expect.stringMatching(/^ally-retention-manual-[0-9a-f]{10}$/) });
      expect(seen.map((s) => `${s.method} ${s.url}`)).toEqual(['GET /apis/batch/v1/namespaces/ally/cronjobs/ally-retention', 'POST /apis/batch/v1/namespaces/ally/jobs']);
      expect(seen.every((s) => s.authorization === 'Bearer sa-token-123')).toBe(true);
      const job = seen[1].body;
      expect(job.metadata).toMatchObject({
        name: started.jobName,
        labels: { 'app.kubernetes.io/name': 'privacy-retention', 'ally.eu/retention-run': started.id },
        annotations: { 'cronjob.kubernetes.io/instantiate': 'manual' },
        ownerReferences: [{ kind: 'CronJob', name: 'ally-retention', uid: CRONJOB.metadata.uid, controller: true }],
      });
      expect(job.spec.backoffLimit).toBe(2);
      expect(job.spec.template.spec).toMatchObject({ serviceAccountName: 'privacy-retention', restartPolicy: 'Never' });
      expect(job.spec.template.spec.containers[0]).toMatchObject({ image: 'ally/privacy:1.0', command: ['node', 'services/privacy/dist/main.js', 'retention-run'], args: ['--run-id', started.id] });
      // Nothing ran in this process: the Job does it.
      await new Promise((r) => setTimeout(r, 200));
      expect(fakes.calls).toEqual([]);

      const out = await privacyService.commands!['retention-run'](privacy.app, job.spec.template.spec.containers[0].args);
      expect(out).toContain(`retention run ${started.id}: completed (dry run: nothing deleted)`);
      const run = await waitFor(async () => {
        const r = await rpc.call(PrivacyRpc.getRetentionRun, { id: started.id }, { actor: compliance });
        return r.status === 'completed' ? r : undefined;
      }, 'the run to complete');
      expect(run.results.length).toBeGreaterThan(10);
    });

    it('fails, with an audit entry, a run whose Job never started within the hour it holds off the next one, so no run goes beside it later', async () => {
      const started = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true }, { actor: compliance });
      expect(started.status).toBe('queued');
      await env.sql(`UPDATE privacy.retention_runs SET created_at = now() - interval '2 hours' WHERE id = $1`, [started.id]);
      const next = await rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true }, { actor: compliance });
      expect(next.id).not.toBe(started.id);
      const old = await rpc.call(PrivacyRpc.getRetentionRun, { id: started.id }, { actor: compliance });
      expect(old).toMatchObject({ status: 'failed', errors: [{ service: 'kubernetes', error: expect.stringContaining('did not start') }] });
      expect(old.finishedAt).toEqual(expect.any(String));
      // Claiming it now takes nothing: it is over.
      const out = await privacyService.commands!['retention-run'](privacy.app, ['--run-id', started.id]);
      expect(out).toContain('failed');
      expect(await env.sql(`SELECT 1 FROM privacy.audit_log WHERE action = 'retention-run.abandoned' AND details->>'runId' = $1`, [started.id])).toHaveLength(1);
      const done = await privacyService.commands!['retention-run'](privacy.app, ['--run-id', next.id]);
      expect(done).toContain('completed');
    });

    it('answers 503 and records the failure when the API server refuses', async () => {
      writeFileSync(join(dir, 'token'), 'revoked');
      await expect(rpc.call(PrivacyRpc.startRetentionRun, { dryRun: true }, { actor: compliance })).rejects.toMatchObject({ status: 503 });
      const [failed] = await env.sql(`SELECT * FROM privacy.retention_runs WHERE status = 'failed' ORDER BY created_at DESC LIMIT 1`);
      expect(failed.errors[0]).toMatchObject({ service: 'kubernetes', error: expect.stringContaining('could not create the retention Job') });
      // The trail says how it ended, as for every run.
      const [finished] = await env.sql(`SELECT details FROM privacy.audit_log WHERE action = 'retention-run.finished' AND details->>'runId' = $1`, [failed.id]);
      expect(finished.details).toMatchObject({ status: 'failed', failedServices: ['kubernetes'] });
      writeFileSync(join(dir, 'token'), 'sa-token-123');
    });
  });
});
