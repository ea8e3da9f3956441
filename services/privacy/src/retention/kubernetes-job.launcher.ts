import { Inject, Injectable } from '@nestjs/common';
import { readFile } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import { PRIVACY_CONFIG, type PrivacyConfig } from '../config.js';

/** The in-cluster connection: the service account's token, CA and namespace, the API server from the environment. */
async function inCluster(config: PrivacyConfig) {
  const { KubeConfig, BatchV1Api } = await import('@kubernetes/client-node');
  const dir = config.K8S_SERVICEACCOUNT_DIR;
  const host = config.KUBERNETES_SERVICE_HOST!;
  const port = config.KUBERNETES_SERVICE_PORT ?? 443;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'in-cluster', server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`, caFile: join(dir, 'ca.crt'), skipTLSVerify: false }],
    // tokenFile re-reads the projected token, which the kubelet rotates.
    users: [{ name: 'in-cluster', authProvider: { name: 'tokenFile', config: { tokenFile: join(dir, 'token') } } }],
    contexts: [{ name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster' }],
    currentContext: 'in-cluster',
  });
  const namespace = config.POD_NAMESPACE ?? (await readFile(join(dir, 'namespace'), 'utf8')).trim();
  return { api: kc.makeApiClient(BatchV1Api), namespace };
}

/** The template's command line, told which queued run to execute. */
export function runArgs(command: string[] | undefined, args: string[] | undefined, runId: string): string[] {
  const base = (args ?? []).filter((a) => a !== '--scheduled');
  if (command?.includes('retention-run') || base.includes('retention-run')) return [...base, '--run-id', runId];
  return ['retention-run', ...base, '--run-id', runId];
}

/**
 * Starts a retention run as a Kubernetes Job made from the retention
 * CronJob's template (what `kubectl create job --from=cronjob/…` does), so a
 * compliance-triggered run gets the same image, resources, service account
 * and security context as the scheduled one; its container runs
 * `retention-run --run-id <id>`.
 */
@Injectable()
export class KubernetesJobLauncher {
  constructor(@Inject(PRIVACY_CONFIG) private readonly config: PrivacyConfig) {}

  async launch(runId: string): Promise<string> {
    const { api, namespace } = await inCluster(this.config);
    const name = this.config.RETENTION_CRONJOB_NAME;
    const cronJob = await api.readNamespacedCronJob({ name, namespace });
    const template = cronJob.spec?.jobTemplate;
    if (!template?.spec?.template.spec?.containers?.length) throw new Error(`CronJob ${namespace}/${name} has no job template with a container`);
    const jobName = `${name}-manual-${runId.replace(/-/g, '').slice(-10)}`.slice(0, 63);
    const podSpec = template.spec.template.spec;
    const [main, ...rest] = podSpec.containers;
    await api.createNamespacedJob({
      namespace,
      body: {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: {
          name: jobName,
          namespace,
          labels: { ...(template.metadata?.labels ?? {}), 'ally.eu/retention-run': runId },
          annotations: { ...(template.metadata?.annotations ?? {}), 'cronjob.kubernetes.io/instantiate': 'manual' },
          ownerReferences: cronJob.metadata?.uid ? [{ apiVersion: 'batch/v1', kind: 'CronJob', name, uid: cronJob.metadata.uid, controller: true }] : undefined,
        },
        spec: {
          ...template.spec,
          template: {
            ...template.spec.template,
            spec: { ...podSpec, containers: [{ ...main, args: runArgs(main.command, main.args, runId) }, ...rest] },
          },
        },
      },
    });
    return jobName;
  }
}
