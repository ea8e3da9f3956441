import { beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import YAML from 'yaml';
import { passwordVariable, renderAuthorization, SERVICES, TOPOLOGY, ADMIN_USER } from '../tools/deploy/nats-permissions.js';
import { renderKustomization } from '../tools/deploy/kustomize-lite.js';
import { PAGES } from '../services/gateway/src/web/pages.js';

/**
 * Renders every overlay of k8s/ (with `kubectl kustomize` where kubectl is
 * installed, else with tools/deploy/kustomize-lite), validates each object
 * against the Kubernetes schemas where the `kubernetes-models` package is
 * installed, and asserts the deployment's invariants: hardened, probed,
 * limited, autoscaled and disruption-budgeted pods; least-privilege RBAC and
 * network paths; NATS and Postgres as the architecture wants them; no secret
 * values; EU locations only.
 */

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

const root = process.cwd();
const K8S = join(root, 'k8s');
const OVERLAYS = ['hetzner-eu', 'local'] as const;
type Overlay = (typeof OVERLAYS)[number];
const DB_SERVICES: readonly string[] = SERVICES.filter((s) => s !== 'gateway');
const INTERNET_SERVICES = ['chat', 'billing', 'notify', 'identity'];
const EU_LOCATIONS = ['nbg1', 'fsn1', 'hel1'];
const EU_REGION_VALUES = [...EU_LOCATIONS, 'eu-central'];

const kubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;

function renderWithKubectl(overlay: Overlay): Obj[] {
  const out = execFileSync('kubectl', ['kustomize', join(K8S, 'overlays', overlay)], { encoding: 'utf8', maxBuffer: 32 * 1024 * 1024 });
  return YAML.parseAllDocuments(out)
    .map((d) => d.toJS() as Obj)
    .filter(Boolean);
}

const rendered = {} as Record<Overlay, Obj[]>;
beforeAll(() => {
  for (const overlay of OVERLAYS) rendered[overlay] = kubectl ? renderWithKubectl(overlay) : renderKustomization(join(K8S, 'overlays', overlay));
});

const all = (o: Overlay, kind: string) => rendered[o].filter((x) => x.kind === kind);
const one = (o: Overlay, kind: string, name: string) => {
  const found = rendered[o].find((x) => x.kind === kind && x.metadata.name === name);
  if (!found) throw new Error(`${o}: no ${kind} ${name}`);
  return found;
};
const podSpecOf = (x: Obj): any =>
  x.kind === 'CronJob' ? x.spec.jobTemplate.spec.template.spec : ['Deployment', 'StatefulSet', 'Job', 'DaemonSet'].includes(x.kind) ? x.spec.template.spec : undefined;
const podLabelsOf = (x: Obj): Record<string, string> =>
  (x.kind === 'CronJob' ? x.spec.jobTemplate.spec.template.metadata?.labels : x.spec.template.metadata?.labels) ?? {};
const matches = (selector: { matchLabels?: Record<string, string> } | undefined, labels: Record<string, string>) =>
  !!selector && Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
const containersOf = (spec: any): any[] => [...(spec.initContainers ?? []), ...spec.containers];
const configMap = (o: Overlay, prefix: string) => {
  const found = all(o, 'ConfigMap').find((c) => c.metadata.name === prefix || c.metadata.name.startsWith(`${prefix}-`));
  if (!found) throw new Error(`${o}: no ConfigMap ${prefix}`);
  return found;
};

/** Every YAML file under a folder (the Helm values and cluster configs as well as kustomize input). */
function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [path] : [];
  });
}

describe.each(OVERLAYS)('k8s/overlays/%s', (overlay) => {
  it(`renders (${kubectl ? 'kubectl kustomize' : 'tools/deploy/kustomize-lite'}) with every service, NATS, Postgres, the retention CronJob and the Ingress`, () => {
    const objs = rendered[overlay];
    for (const svc of SERVICES) expect(objs.some((x) => x.kind === 'Deployment' && x.metadata.name === svc)).toBe(true);
    for (const [kind, name] of [
      ['StatefulSet', 'nats'],
      ['Job', 'nats-streams'],
      ['Cluster', 'ally-pg'],
      ['CronJob', 'ally-retention'],
      ['Ingress', 'gateway'],
      ['NetworkPolicy', 'default-deny-all'],
      ['Namespace', 'ally'],
    ]) expect(() => one(overlay, kind, name)).not.toThrow();
    for (const x of objs) if (x.kind !== 'Namespace') expect({ obj: `${x.kind}/${x.metadata.name}`, ns: x.metadata.namespace }).toEqual({ obj: `${x.kind}/${x.metadata.name}`, ns: 'ally' });
  });

  it('tools/deploy/kustomize-lite (the fallback without kubectl) renders the same objects as kubectl', () => {
    if (!kubectl) return; // nothing to compare with; the checks above ran on kustomize-lite
    const normalise = (objs: Obj[]) =>
      objs
        .map((x) => {
          const y = structuredClone(x);
          // Generated names differ only in their hash suffix.
          return JSON.parse(JSON.stringify(y).replace(/(ally-common|nats-config|nats-streams|chat-models|billing-plans)-[a-z0-9]{10}/g, '$1'));
        })
        .sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`));
    expect(normalise(renderKustomization(join(K8S, 'overlays', overlay)))).toEqual(normalise(rendered[overlay]));
  });

  it('every object matches its Kubernetes schema (kubernetes-models)', async () => {
    const validators = await loadValidators();
    if (!validators) {
      // Without the package the test says so instead of passing silently.
      console.warn('kubernetes-models is not installed: schema validation skipped (add devDependency kubernetes-models@5.1.0)');
      return;
    }
    const problems: string[] = [];
    for (const x of rendered[overlay]) {
      const problem = await validators(x);
      if (problem) problems.push(`${x.kind}/${x.metadata.name}: ${problem}`);
    }
    expect(problems).toEqual([]);
  });

  it('every Deployment: probes, requests and limits, hardened securityContext, topology spread, an HPA and a PDB, no replicas of its own', () => {
    const problems: string[] = [];
    const hpas = all(overlay, 'HorizontalPodAutoscaler');
    const pdbs = all(overlay, 'PodDisruptionBudget');
    for (const d of all(overlay, 'Deployment')) {
      const name = d.metadata.name;
      const spec = d.spec.template.spec;
      const labels = podLabelsOf(d);
      for (const c of spec.containers) {
        for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) if (!c[probe]) problems.push(`${name}/${c.name}: no ${probe}`);
      }
      if (d.spec.replicas !== undefined) problems.push(`${name}: sets replicas (the HPA owns them)`);
      if (!spec.topologySpreadConstraints?.length) problems.push(`${name}: no topologySpreadConstraints`);
      const hpa = hpas.find((h) => h.spec.scaleTargetRef.kind === 'Deployment' && h.spec.scaleTargetRef.name === name);
      if (!hpa) problems.push(`${name}: no HorizontalPodAutoscaler`);
      else if (!(hpa.spec.minReplicas >= 1 && hpa.spec.maxReplicas >= hpa.spec.minReplicas)) problems.push(`${name}: HPA bounds ${hpa.spec.minReplicas}..${hpa.spec.maxReplicas}`);
      if (overlay === 'hetzner-eu' && hpa && hpa.spec.minReplicas < 2) problems.push(`${name}: fewer than 2 replicas in production`);
      if (!pdbs.some((p) => matches(p.spec.selector, labels))) problems.push(`${name}: no PodDisruptionBudget selects its pods`);
      if (!(d.spec.strategy?.rollingUpdate?.maxUnavailable === 0)) problems.push(`${name}: a rollout may take pods away before new ones are ready`);
    }
    expect(problems).toEqual([]);
  });

  it('every pod (Deployment, StatefulSet, Job, CronJob) meets the restricted Pod Security Standard and has resource limits', () => {
    const problems: string[] = [];
    for (const x of rendered[overlay]) {
      const spec = podSpecOf(x);
      if (!spec) continue;
      const name = `${x.kind}/${x.metadata.name}`;
      const pod = spec.securityContext ?? {};
      if (pod.runAsNonRoot !== true) problems.push(`${name}: pod runAsNonRoot is not true`);
      if (pod.seccompProfile?.type !== 'RuntimeDefault') problems.push(`${name}: pod seccompProfile is not RuntimeDefault`);
      if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problems.push(`${name}: uses host namespaces`);
      if ((spec.volumes ?? []).some((v: any) => v.hostPath)) problems.push(`${name}: mounts a hostPath`);
      for (const c of containersOf(spec)) {
        const sc = c.securityContext ?? {};
        const where = `${name}/${c.name}`;
        if (sc.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
        if (sc.readOnlyRootFilesystem !== true) problems.push(`${where}: root filesystem is writable`);
        if (sc.privileged) problems.push(`${where}: privileged`);
        if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${where}: capabilities not dropped`);
        if (sc.capabilities?.add?.length) problems.push(`${where}: adds capabilities`);
        if (sc.runAsUser === 0) problems.push(`${where}: runs as root`);
        for (const r of ['cpu', 'memory']) {
          if (!c.resources?.requests?.[r]) problems.push(`${where}: no ${r} request`);
          if (!c.resources?.limits?.[r]) problems.push(`${where}: no ${r} limit`);
        }
        if (!c.image || /:latest$/.test(c.image) || !/:[^/]+$/.test(c.image)) problems.push(`${where}: image ${c.image} has no fixed tag`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('environment: every $(VAR) is defined before it is used, and the superuser reaches only the migration', () => {
    const problems: string[] = [];
    for (const x of rendered[overlay]) {
      const spec = podSpecOf(x);
      if (!spec) continue;
      for (const c of containersOf(spec)) {
        const seen = new Set<string>();
        for (const e of c.env ?? []) {
          for (const m of String(e.value ?? '').matchAll(/\$\(([A-Z0-9_]+)\)/g)) if (!seen.has(m[1])) problems.push(`${x.kind}/${x.metadata.name}/${c.name}: ${e.name} uses $(${m[1]}) before it is defined`);
          seen.add(e.name);
        }
      }
      for (const c of spec.containers) {
        const text = JSON.stringify(c);
        if (/ally-pg-superuser|DATABASE_ADMIN_URL/.test(text)) problems.push(`${x.kind}/${x.metadata.name}/${c.name}: the Postgres superuser reaches a long-running container`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('services: their own NATS user and password, their own Postgres role, migrations as an init container, the right port', () => {
    for (const svc of SERVICES) {
      const d = one(overlay, 'Deployment', svc);
      const spec = d.spec.template.spec;
      const main = spec.containers.find((c: any) => c.name === svc);
      const env = Object.fromEntries((main.env ?? []).map((e: any) => [e.name, e]));
      expect(env.NATS_USER.value).toBe(svc);
      expect(env.NATS_PASSWORD.valueFrom.secretKeyRef).toEqual({ name: `ally-${svc}-nats`, key: 'password' });
      expect(main.command).toEqual(['node', `services/${svc}/dist/main.js`]);
      const port = svc === 'gateway' ? 3000 : 8080;
      expect(main.ports.map((p: any) => p.containerPort)).toContain(port);
      expect(main.readinessProbe.httpGet.path).toBe('/health/ready');
      expect(main.livenessProbe.httpGet.path).toBe('/health/live');
      const probePort = main.readinessProbe.httpGet.port;
      expect(main.ports.find((p: any) => p.name === probePort || p.containerPort === probePort)?.containerPort).toBe(port);
      if (DB_SERVICES.includes(svc)) {
        expect(env.DB_USER.valueFrom.secretKeyRef.name).toBe(`ally-${svc}-db`);
        expect(env.DATABASE_URL.value).toMatch(/^postgres:\/\/\$\(DB_USER\):\$\(DB_PASSWORD\)@ally-pg-rw:5432\/ally\?sslmode=verify-full/);
        const migrate = spec.initContainers?.find((c: any) => c.name === 'migrate');
        expect(migrate?.command).toEqual(['node', `services/${svc}/dist/main.js`, 'migrate']);
        expect(migrate.image).toBe(main.image);
      } else {
        expect(spec.initContainers ?? []).toEqual([]);
        expect(JSON.stringify(main)).not.toMatch(/DATABASE_URL|ally-pg/);
      }
    }
  });

  it('service accounts: no token anywhere but privacy, whose Role only creates and watches Jobs and reads its CronJob', () => {
    const workloads = rendered[overlay].filter((x) => podSpecOf(x));
    for (const w of workloads) {
      const spec = podSpecOf(w);
      const sa = spec.serviceAccountName ?? 'default';
      const account = rendered[overlay].find((x) => x.kind === 'ServiceAccount' && x.metadata.name === sa);
      const token = spec.automountServiceAccountToken ?? account?.automountServiceAccountToken ?? true;
      expect({ workload: `${w.kind}/${w.metadata.name}`, token }).toEqual({ workload: `${w.kind}/${w.metadata.name}`, token: w.kind === 'Deployment' && w.metadata.name === 'privacy' });
    }
    for (const sa of all(overlay, 'ServiceAccount')) expect({ sa: sa.metadata.name, automount: sa.automountServiceAccountToken }).toEqual({ sa: sa.metadata.name, automount: sa.metadata.name === 'privacy' });
    expect(all(overlay, 'ClusterRole')).toEqual([]);
    expect(all(overlay, 'ClusterRoleBinding')).toEqual([]);
    const roles = all(overlay, 'Role');
    expect(roles.map((r) => r.metadata.name)).toEqual(['privacy-retention-launcher']);
    const rules = roles[0].rules.map((r: any) => ({ ...r, verbs: [...r.verbs].sort() }));
    expect(rules).toEqual([
      { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'get', 'list', 'watch'] },
      { apiGroups: ['batch'], resources: ['cronjobs'], resourceNames: ['ally-retention'], verbs: ['get'] },
    ]);
    const bindings = all(overlay, 'RoleBinding');
    expect(bindings.map((b) => ({ role: b.roleRef.name, subjects: b.subjects }))).toEqual([
      { role: 'privacy-retention-launcher', subjects: [{ kind: 'ServiceAccount', name: 'privacy', namespace: 'ally' }] },
    ]);
  });

  it('network: default deny, DNS for all, ingress only to the gateway from the ingress controller, NATS and Postgres for the services, HTTPS out only for chat, billing, notify, identity', () => {
    const policies = all(overlay, 'NetworkPolicy');
    const deny = one(overlay, 'NetworkPolicy', 'default-deny-all');
    expect(deny.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    const dns = one(overlay, 'NetworkPolicy', 'allow-dns');
    expect(dns.spec.podSelector).toEqual({});
    expect(dns.spec.egress[0].ports.map((p: any) => p.port)).toEqual([53, 53]);

    /** Pods of a workload, and which policies select them. */
    const labelsOf = (name: string) => podLabelsOf(one(overlay, 'Deployment', name));
    const selecting = (labels: Record<string, string>) => policies.filter((p) => p.metadata.name !== 'default-deny-all' && matches(p.spec.podSelector, labels) && Object.keys(p.spec.podSelector).length);

    // Ingress from outside the namespace: only the gateway (and cert-manager's HTTP-01 solver) from the ingress controller.
    for (const p of policies) {
      for (const rule of p.spec.ingress ?? []) {
        for (const from of rule.from ?? []) {
          const ns = from.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'];
          if (!from.namespaceSelector) continue;
          if (ns === 'traefik') {
            expect({ policy: p.metadata.name, target: p.spec.podSelector.matchLabels }).toEqual({
              policy: p.metadata.name,
              target: p.metadata.name === 'acme-solver-from-ingress' ? { 'acme.cert-manager.io/http01-solver': 'true' } : { 'app.kubernetes.io/name': 'gateway' },
            });
          } else {
            // The CloudNativePG operator (status port) and Prometheus (metrics ports) only.
            expect({ policy: p.metadata.name, ns }).toEqual({ policy: p.metadata.name, ns: p.metadata.name === 'postgres-servers' ? 'cnpg-system' : 'monitoring' });
            expect(rule.ports.every((port: any) => [5432, 8000, 8080, 3000, 8222].includes(port.port))).toBe(true);
          }
        }
        expect(rule.from?.length ?? 0).toBeGreaterThan(0); // never "from anywhere"
      }
    }
    expect(policies.filter((p) => (p.spec.ingress ?? []).some((r: any) => r.from?.some((f: any) => f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'traefik' && !f.podSelector) && p.metadata.name !== 'acme-solver-from-ingress'))).toEqual([]);

    // Egress to addresses outside the cluster (an ipBlock that is not private) on 443: the four provider-facing services, and Postgres for its backups.
    const isPublic = (cidr: string) => cidr === '0.0.0.0/0' || !/^(10\.|172\.(1[6-9]|2\d|3[01])\.|192\.168\.)/.test(cidr);
    const internetPolicies = policies.filter((p) => (p.spec.egress ?? []).some((r: any) => r.to?.some((t: any) => t.ipBlock && isPublic(t.ipBlock.cidr))));
    expect(internetPolicies.map((p) => p.metadata.name).sort()).toEqual(['internet-egress-https', 'postgres-servers']);
    const https = one(overlay, 'NetworkPolicy', 'internet-egress-https');
    expect(https.spec.egress[0].ports).toEqual([{ protocol: 'TCP', port: 443 }]);
    expect(https.spec.egress[0].to[0].ipBlock.except).toEqual(expect.arrayContaining(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16']));
    for (const svc of SERVICES) {
      const names = selecting(labelsOf(svc)).map((p) => p.metadata.name);
      expect({ svc, internet: names.includes('internet-egress-https') }).toEqual({ svc, internet: INTERNET_SERVICES.includes(svc) });
      expect({ svc, nats: names.includes('nats-clients') }).toEqual({ svc, nats: true });
      expect({ svc, postgres: names.includes('postgres-clients') }).toEqual({ svc, postgres: DB_SERVICES.includes(svc) });
      expect({ svc, kubeApi: names.includes('kube-api-egress') }).toEqual({ svc, kubeApi: svc === 'privacy' });
      expect({ svc, fromIngress: names.includes('gateway-from-ingress') }).toEqual({ svc, fromIngress: svc === 'gateway' });
    }
    // privacy reaches the API server on the private network; on kind and k3d that is the control plane's container on the docker network.
    const apiServer = one(overlay, 'NetworkPolicy', 'kube-api-egress').spec.egress;
    expect(apiServer).toEqual([
      {
        to: [{ ipBlock: { cidr: '10.0.0.0/8' } }, ...(overlay === 'local' ? [{ ipBlock: { cidr: '172.16.0.0/12' } }] : [])],
        ports: [
          { protocol: 'TCP', port: 443 },
          { protocol: 'TCP', port: 6443 },
        ],
      },
    ]);
    // Services reach NATS on 4222 and Postgres on 5432 only.
    expect(one(overlay, 'NetworkPolicy', 'nats-clients').spec.egress).toEqual([{ to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'nats' } } }], ports: [{ protocol: 'TCP', port: 4222 }] }]);
    expect(one(overlay, 'NetworkPolicy', 'postgres-clients').spec.egress).toEqual([{ to: [{ podSelector: { matchLabels: { 'cnpg.io/cluster': 'ally-pg' } } }], ports: [{ protocol: 'TCP', port: 5432 }] }]);
    // The labels the policies rely on are on the pods that need them, and the NATS and Postgres pods are covered.
    expect(matches(one(overlay, 'NetworkPolicy', 'nats-servers').spec.podSelector, podLabelsOf(one(overlay, 'StatefulSet', 'nats')))).toBe(true);
    for (const name of ['ally-retention']) expect(podLabelsOf(one(overlay, 'CronJob', name))).toMatchObject({ 'ally.eu/nats-client': 'true', 'ally.eu/postgres-client': 'true' });
    expect(podLabelsOf(one(overlay, 'CronJob', 'ally-retention'))['ally.eu/internet-egress']).toBeUndefined();
  });

  it('NATS: JetStream with sync_interval always, the generated users, every password from a Secret, ALLY_EVENTS replicated like the servers', () => {
    const sts = one(overlay, 'StatefulSet', 'nats');
    const replicas = overlay === 'hetzner-eu' ? 3 : 1;
    expect(sts.spec.replicas).toBe(replicas);
    expect(sts.spec.podManagementPolicy).toBe('Parallel');
    const cm = configMap(overlay, 'nats-config');
    const conf: string = cm.data['nats.conf'];
    expect(conf).toMatch(/^\s*sync_interval:\s*always\s*$/m);
    expect(conf).toMatch(/include "authorization.conf"/);
    expect(cm.data['authorization.conf']).toBe(renderAuthorization());
    if (replicas > 1) {
      for (let i = 0; i < replicas; i++) expect(conf).toContain(`nats://nats-${i}.nats-headless:6222`);
    } else {
      expect(conf).not.toMatch(/^\s*cluster\s*\{/m);
    }
    const env = Object.fromEntries(sts.spec.template.spec.containers[0].env.map((e: any) => [e.name, e]));
    for (const user of [...SERVICES, ADMIN_USER]) {
      const v = env[passwordVariable(user)];
      expect({ user, secret: v?.valueFrom?.secretKeyRef }).toEqual({ user, secret: { name: user === ADMIN_USER ? 'ally-nats-admin' : `ally-${user}-nats`, key: 'password' } });
    }
    const common = configMap(overlay, 'ally-common').data;
    expect(Number(common.NATS_STREAM_REPLICAS)).toBe(replicas);
    expect(common.NATS_SUBJECT_PREFIX ?? '').toBe('');
    const streams = configMap(overlay, 'nats-streams').data;
    for (const name of ['ALLY_EVENTS', 'ALLY_EVENTS_DLQ']) expect(JSON.parse(streams[`${name}.json`]).num_replicas).toBe(replicas);
    const job = one(overlay, 'Job', 'nats-streams');
    const jobEnv = Object.fromEntries(job.spec.template.spec.containers[0].env.map((e: any) => [e.name, e]));
    expect(jobEnv.NATS_USER.value).toBe(ADMIN_USER);
    expect(podLabelsOf(job)['ally.eu/nats-client']).toBe('true');
    // The operator's password reaches only NATS and the stream Job.
    for (const x of rendered[overlay]) {
      if (JSON.stringify(x).includes('ally-nats-admin')) expect(['StatefulSet/nats', 'Job/nats-streams']).toContain(`${x.kind}/${x.metadata.name}`);
    }
    expect(one(overlay, 'PodDisruptionBudget', 'nats').spec.maxUnavailable).toBe(1);
  });

  it('nats.conf is a valid nats-server configuration (checked with the installed nats-server)', () => {
    const cm = configMap(overlay, 'nats-config');
    const dir = mkdtempSync(join(tmpdir(), 'ally-nats-conf-'));
    try {
      const version = execFileSync('nats-server', ['--version'], { encoding: 'utf8' }).match(/v(\d+)\.(\d+)/);
      const older = version && (Number(version[1]) < 2 || (Number(version[1]) === 2 && Number(version[2]) < 10));
      // sync_interval arrived in 2.10; the image (nats:2.10.x) has it, an older local server does not.
      const conf = older ? cm.data['nats.conf'].replace(/^\s*sync_interval:.*$/m, '') : cm.data['nats.conf'];
      writeFileSync(join(dir, 'nats.conf'), conf.replace('store_dir: /data', `store_dir: ${join(dir, 'js')}`).replace('/var/run/nats/nats.pid', join(dir, 'nats.pid')));
      writeFileSync(join(dir, 'authorization.conf'), cm.data['authorization.conf']);
      const env: Record<string, string> = { ...process.env, POD_NAME: 'nats-0' } as Record<string, string>;
      for (const user of [...SERVICES, ADMIN_USER]) env[passwordVariable(user)] = 'x';
      const r = spawnSync('nats-server', ['-t', '-c', join(dir, 'nats.conf')], { env, encoding: 'utf8' });
      expect({ status: r.status, out: r.status === 0 ? '' : `${r.stdout}${r.stderr}`.trim() }).toEqual({ status: 0, out: '' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Postgres takes every service at its HPA maximum: each pod's pool and its LISTEN connections, with a rollout's surge to spare", () => {
    const maxConnections = Number(one(overlay, 'Cluster', 'ally-pg').spec.postgresql.parameters.max_connections);
    let needed = 0;
    for (const d of all(overlay, 'Deployment')) {
      const main = d.spec.template.spec.containers[0];
      if (!main.env?.some((e: any) => e.name === 'DATABASE_URL')) continue;
      const pool = Number(main.env.find((e: any) => e.name === 'DATABASE_POOL_SIZE')?.value ?? 10);
      const hpa = all(overlay, 'HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.name === d.metadata.name);
      // A rollout runs one pod more (maxSurge), each with the pool and the relay's LISTEN connection
      // (identity's pods one more LISTEN: the sessions that end, for the gateways).
      const listens = d.metadata.name === 'identity' ? 2 : 1;
      needed += ((hpa?.spec.maxReplicas ?? 1) + 1) * (pool + listens);
    }
    // The retention job, migrations and an operator's psql: 20 more.
    expect(needed + 20).toBeLessThanOrEqual(maxConnections);
  });

  it('Postgres: a CloudNativePG Cluster with one role per service, TLS, and (in production) 3 instances with backups to Hetzner Object Storage in the EU', () => {
    const c = one(overlay, 'Cluster', 'ally-pg');
    expect(c.apiVersion).toBe('postgresql.cnpg.io/v1');
    expect(c.spec.managed.roles.map((r: any) => ({ name: r.name, secret: r.passwordSecret.name, superuser: r.superuser, createrole: r.createrole, login: r.login }))).toEqual(
      DB_SERVICES.map((s) => ({ name: `ally_${s}`, secret: `ally-${s}-db`, superuser: false, createrole: false, login: true })),
    );
    expect(c.spec.bootstrap.initdb.database).toBe('ally');
    if (overlay === 'hetzner-eu') {
      expect(c.spec.instances).toBe(3);
      expect(c.spec.affinity.podAntiAffinityType).toBe('required');
      expect(c.spec.storage.storageClass).toBe('hcloud-volumes');
      const store = c.spec.backup.barmanObjectStore;
      expect(store.endpointURL).toMatch(new RegExp(`^https://(${EU_LOCATIONS.join('|')})\\.your-objectstorage\\.com$`));
      expect(store.destinationPath).toMatch(/^s3:\/\//);
      expect(store.s3Credentials.accessKeyId.name).toBe('ally-pg-backup-s3');
      expect(one(overlay, 'ScheduledBackup', 'ally-pg-daily').spec.cluster.name).toBe('ally-pg');
      expect(one(overlay, 'StatefulSet', 'nats').spec.volumeClaimTemplates[0].spec.storageClassName).toBe('hcloud-volumes');
    } else {
      expect(c.spec.instances).toBe(1);
      expect(c.spec.backup).toBeUndefined();
    }
  });

  it('Ingress: only the gateway, the API, its docs and the pages mails and Stripe link to (never /health or /metrics), TLS from cert-manager in production', () => {
    const ing = one(overlay, 'Ingress', 'gateway');
    const paths = ing.spec.rules.flatMap((r: any) => r.http.paths);
    expect(paths.map((p: any) => `${p.pathType} ${p.path}`)).toEqual([
      'Prefix /v1',
      'Prefix /docs',
      'Exact /',
      'Exact /verify-email',
      'Exact /reset-password',
      'Exact /forgot-password',
      'Exact /invitations/accept',
      'Prefix /privacy/requests',
      'Prefix /billing',
      'Prefix /web',
      'Exact /.well-known/jwks.json',
    ]);
    // Every page the gateway serves is reachable; nothing under /health or /metrics is.
    const routed = (path: string) => paths.some((p: any) => (p.pathType === 'Exact' ? path === p.path : path === p.path || path.startsWith(`${p.path}/`)));
    for (const page of Object.keys(PAGES)) expect({ page, routed: routed(page.replace(':id', 'x')) }).toEqual({ page, routed: true });
    for (const inside of ['/health/live', '/health/ready', '/metrics']) expect({ inside, routed: routed(inside) }).toEqual({ inside, routed: false });
    for (const p of paths) expect(p.backend.service.name).toBe('gateway');
    expect(all(overlay, 'Ingress')).toHaveLength(1);
    for (const x of rendered[overlay]) if (x.kind === 'Service') expect({ svc: x.metadata.name, type: x.spec.type ?? 'ClusterIP' }).toEqual({ svc: x.metadata.name, type: 'ClusterIP' });
    if (overlay === 'hetzner-eu') {
      expect(ing.metadata.annotations?.['cert-manager.io/cluster-issuer']).toBe('letsencrypt-prod');
      expect(ing.spec.tls[0].hosts).toEqual([ing.spec.rules[0].host]);
    }
  });

  it('the retention CronJob runs privacy retention-run, one at a time, without a token', () => {
    const cj = one(overlay, 'CronJob', 'ally-retention');
    const spec = podSpecOf(cj);
    expect(spec.containers[0].command).toEqual(['node', 'services/privacy/dist/main.js', 'retention-run']);
    expect(spec.containers[0].image).toBe(one(overlay, 'Deployment', 'privacy').spec.template.spec.containers[0].image);
    expect(cj.spec.concurrencyPolicy).toBe('Forbid');
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.restartPolicy).toBe('Never');
  });

  it('holds no Secret: Secrets are created outside the repo', () => {
    expect(rendered[overlay].filter((x) => x.kind === 'Secret' || x.kind === 'SealedSecret')).toEqual([]);
    const text = JSON.stringify(rendered[overlay]);
    expect(text).not.toMatch(/sk_(live|test)_[A-Za-z0-9]{8,}|whsec_[A-Za-z0-9]{8,}|xkeysib-|-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  });

  if (overlay === 'hetzner-eu') {
    it('production: NODE_ENV=production, images from one registry with one release tag, pods pinned to EU nodes', () => {
      expect(configMap(overlay, 'ally-common').data.NODE_ENV).toBe('production');
      const images = new Set<string>();
      for (const x of rendered[overlay]) {
        const spec = podSpecOf(x);
        if (!spec) continue;
        for (const c of containersOf(spec)) if (c.image.includes('/ally/')) images.add(c.image);
        const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
        const region = terms.flatMap((t: any) => t.matchExpressions).find((e: any) => e.key === 'topology.kubernetes.io/region');
        expect({ pod: `${x.kind}/${x.metadata.name}`, region: region?.values }).toEqual({ pod: `${x.kind}/${x.metadata.name}`, region: ['eu-central', 'nbg1', 'fsn1', 'hel1'] });
      }
      const tags = new Set([...images].map((i) => i.split(':').pop()));
      const registries = new Set([...images].map((i) => i.slice(0, i.lastIndexOf('/ally/'))));
      expect({ tags: tags.size, registries: registries.size }).toEqual({ tags: 1, registries: 1 });
      expect([...images].map((i) => i.split('/').pop()!.split(':')[0]).sort()).toEqual([...SERVICES].sort());
    });
  }
});

describe('EU only', () => {
  it('every Hetzner location, region and object-storage endpoint anywhere under k8s/ is nbg1, fsn1 or hel1', () => {
    const problems: string[] = [];
    const visit = (file: string, node: unknown, key = ''): void => {
      if (Array.isArray(node)) return node.forEach((n) => visit(file, n, key));
      if (node && typeof node === 'object') {
        const o = node as Record<string, unknown>;
        // nodeSelector terms: { key: topology.kubernetes.io/region, values: [...] }
        if (typeof o.key === 'string' && /topology\.kubernetes\.io\/(region|zone)|csi\.hetzner\.cloud\/location/.test(o.key) && Array.isArray(o.values)) {
          for (const v of o.values) if (!EU_REGION_VALUES.some((eu) => String(v) === eu || String(v).startsWith(`${eu}-`))) problems.push(`${file}: ${o.key} ${v}`);
        }
        for (const [k, v] of Object.entries(o)) visit(file, v, k);
        return;
      }
      if (typeof node !== 'string') return;
      if (/(^|\/)location$|^locations?$/.test(key) && !EU_LOCATIONS.includes(node)) problems.push(`${file}: ${key}: ${node}`);
      for (const m of node.matchAll(/([a-z0-9-]+)\.your-objectstorage\.com/g)) if (!EU_LOCATIONS.includes(m[1])) problems.push(`${file}: object storage ${m[0]}`);
    };
    const files = yamlFiles(K8S);
    expect(files.length).toBeGreaterThan(10);
    for (const file of files) {
      for (const doc of YAML.parseAllDocuments(readFileSync(file, 'utf8'))) visit(relative(root, file), doc.toJS());
    }
    for (const overlay of OVERLAYS) for (const x of rendered[overlay]) visit(`rendered ${overlay}`, x);
    // No US or Asian Hetzner location as a value anywhere (ash, hil, sin).
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/[:\[,\s-]\s*"?(ash|hil|sin)"?\s*($|[,\]#])/gm)) problems.push(`${relative(root, file)}: ${m[1]}`);
    }
    expect(problems).toEqual([]);
  });

  it('the Hetzner load balancer and cluster config name EU locations', () => {
    const traefik = YAML.parse(readFileSync(join(K8S, 'overlays/hetzner-eu/cluster/traefik-values.yaml'), 'utf8'));
    expect(EU_LOCATIONS).toContain(traefik.service.annotations['load-balancer.hetzner.cloud/location']);
    expect(traefik.service.annotations['load-balancer.hetzner.cloud/uses-proxyprotocol']).toBe('true');
    const cluster = YAML.parse(readFileSync(join(K8S, 'overlays/hetzner-eu/cluster/hetzner-k3s.yaml'), 'utf8'));
    expect(cluster.hetzner_token).toBeUndefined();
    for (const l of cluster.masters_pool.locations) expect(EU_LOCATIONS).toContain(l);
    for (const pool of cluster.worker_node_pools) expect(EU_LOCATIONS).toContain(pool.location);
    expect(cluster.addons.metrics_server.enabled).toBe(true);
  });
});

describe('k8s/secrets.example.yaml', () => {
  const docs = () => YAML.parseAllDocuments(readFileSync(join(K8S, 'secrets.example.yaml'), 'utf8')).map((d) => d.toJS() as Obj);

  it('holds placeholders only, never a value', () => {
    const placeholders = /^<(random:\d+|from:.+)>$/;
    const usernames = /^ally_[a-z]+$/;
    for (const s of docs()) {
      expect(s.kind).toBe('Secret');
      expect(s.data).toBeUndefined();
      for (const [k, v] of Object.entries(s.stringData as Record<string, string>)) {
        expect({ secret: s.metadata.name, key: k, ok: placeholders.test(v) || (k === 'username' && usernames.test(v)) }).toEqual({ secret: s.metadata.name, key: k, ok: true });
      }
    }
  });

  it('names every Secret the manifests reference, with the keys they read', () => {
    const provided = new Map(docs().map((s) => [s.metadata.name, Object.keys(s.stringData)]));
    const referenced = new Map<string, Set<string>>();
    const add = (name: string, key?: string) => {
      if (!referenced.has(name)) referenced.set(name, new Set());
      if (key) referenced.get(name)!.add(key);
    };
    for (const x of rendered['hetzner-eu']) {
      const walk = (n: any): void => {
        if (Array.isArray(n)) return n.forEach(walk);
        if (!n || typeof n !== 'object') return;
        if (n.secretKeyRef) add(n.secretKeyRef.name, n.secretKeyRef.key);
        if (n.secretRef?.name && !n.secretRef.optional) add(n.secretRef.name);
        if (n.passwordSecret?.name) add(n.passwordSecret.name, 'password');
        if (n.accessKeyId?.name) add(n.accessKeyId.name, n.accessKeyId.key);
        if (n.secretAccessKey?.name) add(n.secretAccessKey.name, n.secretAccessKey.key);
        Object.values(n).forEach(walk);
      };
      walk(x);
    }
    // Created by CloudNativePG (ally-pg-superuser, ally-pg-ca) or by cert-manager (gateway-tls).
    const generated = ['ally-pg-superuser', 'ally-pg-ca'];
    for (const [name, keys] of referenced) {
      if (generated.includes(name)) continue;
      expect({ name, provided: provided.has(name) }).toEqual({ name, provided: true });
      for (const key of keys) expect({ name, key, provided: provided.get(name)!.includes(key) }).toEqual({ name, key, provided: true });
    }
    // Every key the NATS users and the model catalog need.
    for (const svc of SERVICES) expect(provided.get(`ally-${svc}-nats`)).toEqual(['password']);
    const catalog = JSON.parse(readFileSync(join(K8S, 'base/chat-models.json'), 'utf8'));
    for (const d of catalog.deployments) expect(provided.get('ally-chat-secrets')).toContain(d.apiKeyEnv);
    expect(catalog.deployments.every((d: any) => d.euResident)).toBe(true);
  });

  it('k8s/scripts/create-secrets.sh creates the same Secrets (checked with a stand-in kubectl)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ally-secrets-'));
    try {
      const log = join(dir, 'calls.log');
      writeFileSync(join(dir, 'kubectl'), `#!/bin/sh\nprintf '%s\\n' "$*" >> ${log}\ncase "$*" in *" get secret "*) exit 1;; esac\nexit 0\n`, { mode: 0o755 });
      const env = {
        ...process.env,
        PATH: `${dir}:${process.env.PATH}`,
        CHAT_KEK: 'k',
        STRIPE_SECRET_KEY: 'sk_test_x',
        STRIPE_WEBHOOK_SECRET: 'whsec_x',
        BREVO_API_KEY: 'b',
        S3_ACCESS_KEY_ID: 'a',
        S3_SECRET_ACCESS_KEY: 's',
        AZURE_OPENAI_SWEDENCENTRAL_KEY: 'x',
        AZURE_OPENAI_DATAZONE_EU_KEY: 'x',
        OPENAI_EU_API_KEY: 'x',
        SSO_PROVIDERS: '[]',
      };
      const r = spawnSync('bash', [join(K8S, 'scripts/create-secrets.sh')], { env, encoding: 'utf8' });
      expect(r.status).toBe(0);
      const created = readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l.includes('create secret generic'))
        .map((l) => l.split(' ')[5]);
      expect(created.sort()).toEqual(docs().map((s) => s.metadata.name).sort());
      // NATS passwords start with a letter (nats-server would parse a leading digit as a number and refuse to start).
      const natsPasswords = readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => / ally-([a-z]+-nats|nats-admin) /.test(l))
        .map((l) => /--from-literal=password=(\S+)/.exec(l)?.[1]);
      expect(natsPasswords).toHaveLength(SERVICES.length + 1);
      for (const p of natsPasswords) expect(p).toMatch(/^[a-z][a-f0-9]{48}$/);

      // One provider credential set in place, the Secret's other (generated) keys untouched.
      writeFileSync(log, '');
      const set = spawnSync('bash', [join(K8S, 'scripts/create-secrets.sh'), '--set', 'ally-notify-secrets', 'BREVO_API_KEY'], { env: { ...env, BREVO_API_KEY: 'xkeysib-"neu"' }, encoding: 'utf8' });
      expect(set.status).toBe(0);
      const [patch] = readFileSync(log, 'utf8').split('\n');
      const body = JSON.parse(patch.slice(patch.indexOf('{')));
      expect(patch).toMatch(/^-n ally patch secret ally-notify-secrets --type merge -p /);
      expect(body).toEqual({ data: { BREVO_API_KEY: Buffer.from('xkeysib-"neu"').toString('base64') } });
      // Two keys in one patch (a KEK swapped in one step: no pod starts with half of it).
      writeFileSync(log, '');
      const swap = { CHAT_KEK: Buffer.alloc(32, 2).toString('base64'), CHAT_KEK_UNWRAP_ONLY: Buffer.alloc(32, 1).toString('base64') };
      expect(spawnSync('bash', [join(K8S, 'scripts/create-secrets.sh'), '--set', 'ally-chat-secrets', 'CHAT_KEK', 'CHAT_KEK_UNWRAP_ONLY'], { env: { ...env, ...swap }, encoding: 'utf8' }).status).toBe(0);
      const patches = readFileSync(log, 'utf8').split('\n').filter(Boolean);
      expect(patches).toHaveLength(1);
      expect(JSON.parse(patches[0].slice(patches[0].indexOf('{')))).toEqual({
        data: { CHAT_KEK: Buffer.from(swap.CHAT_KEK).toString('base64'), CHAT_KEK_UNWRAP_ONLY: Buffer.from(swap.CHAT_KEK_UNWRAP_ONLY).toString('base64') },
      });
      const unset = spawnSync('bash', [join(K8S, 'scripts/create-secrets.sh'), '--set', 'ally-notify-secrets', 'NOT_SET_ANYWHERE'], { env, encoding: 'utf8' });
      expect({ status: unset.status, stderr: unset.stderr.trim() }).toEqual({ status: 1, stderr: 'missing environment variable NOT_SET_ANYWHERE' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('docker-compose.yml', () => {
  const compose = () => YAML.parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true });

  it('runs NATS with the generated users, and every service logs in as its own user with the password NATS expects', () => {
    const c = compose();
    const nats = c.services.nats;
    expect(nats.command).toEqual(['nats-server', '--config', '/etc/nats/nats.conf']);
    const mounts = Object.fromEntries(nats.volumes.filter((v: string) => v.startsWith('./')).map((v: string) => [v.split(':')[1], v.split(':')[0]]));
    expect(mounts['/etc/nats/authorization.conf']).toBe('./k8s/base/nats/authorization.conf');
    const conf = readFileSync(join(root, mounts['/etc/nats/nats.conf']), 'utf8');
    expect(conf).toMatch(/include "authorization.conf"/);
    expect(conf).toMatch(/sync_interval: always/);
    for (const svc of SERVICES) {
      const env = c.services[svc].environment;
      expect({ svc, user: env.NATS_USER, password: env.NATS_PASSWORD }).toEqual({ svc, user: svc, password: nats.environment[passwordVariable(svc)] });
      expect(env.NATS_PASSWORD).toMatch(/^[A-Za-z][A-Za-z0-9]*$/);
    }
    expect(nats.environment[passwordVariable(ADMIN_USER)]).toMatch(/^[A-Za-z][A-Za-z0-9]*$/);
  });

  it("the Stripe emulator has the plans' prices (Checkout and invoices show what a plan costs)", () => {
    const emulator = Object.values(compose().services as Record<string, { environment?: Record<string, string> }>).find((s) => s.environment?.STRIPE_EMULATOR_PRICES);
    const { plans } = JSON.parse(readFileSync(join(root, 'services/billing/config/plans.json'), 'utf8')) as { plans: { stripePriceId: string | null; pricePerSeat: number; currency: string }[] };
    const expected = plans.filter((p) => p.stripePriceId).map((p) => `${p.stripePriceId}=${p.pricePerSeat}:${p.currency}`);
    expect(emulator?.environment?.STRIPE_EMULATOR_PRICES.split(',')).toEqual(expected);
  });

  it("NATS' compose configuration is valid for nats-server", () => {
    const dir = mkdtempSync(join(tmpdir(), 'ally-compose-nats-'));
    try {
      const c = compose();
      const version = execFileSync('nats-server', ['--version'], { encoding: 'utf8' }).match(/v(\d+)\.(\d+)/);
      const older = version && Number(version[1]) === 2 && Number(version[2]) < 10;
      let conf = readFileSync(join(root, 'tools/deploy/compose/nats.conf'), 'utf8').replace('store_dir: /data', `store_dir: ${join(dir, 'js')}`);
      if (older) conf = conf.replace(/^\s*sync_interval:.*$/m, '');
      writeFileSync(join(dir, 'nats.conf'), conf);
      writeFileSync(join(dir, 'authorization.conf'), readFileSync(join(K8S, 'base/nats/authorization.conf')));
      const r = spawnSync('nats-server', ['-t', '-c', join(dir, 'nats.conf')], { env: { ...process.env, ...c.services.nats.environment }, encoding: 'utf8' });
      expect({ status: r.status, out: r.status === 0 ? '' : `${r.stdout}${r.stderr}`.trim() }).toEqual({ status: 0, out: '' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deployment config stays in step with the code', () => {
  it('every service declared in the NATS topology has a Deployment, and nothing else does', () => {
    expect(all('hetzner-eu', 'Deployment').map((d) => d.metadata.name).sort()).toEqual([...SERVICES].sort());
    expect(Object.keys(TOPOLOGY).sort()).toEqual([...SERVICES].sort());
  });

  it('the stream files match what ensureStreams (libs/messaging) creates, but for the replicas', () => {
    const src = readFileSync(join(root, 'libs/messaging/src/jetstream.ts'), 'utf8');
    const events = JSON.parse(readFileSync(join(K8S, 'base/nats/streams/ALLY_EVENTS.json'), 'utf8'));
    const dlq = JSON.parse(readFileSync(join(K8S, 'base/nats/streams/ALLY_EVENTS_DLQ.json'), 'utf8'));
    const DAY_NS = 24 * 60 * 60 * 1e9;
    expect(events).toMatchObject({ name: 'ALLY_EVENTS', subjects: ['ally.evt.>'], max_age: 7 * DAY_NS, duplicate_window: 120e9, retention: 'limits', storage: 'file', discard: 'old' });
    expect(dlq).toMatchObject({ name: 'ALLY_EVENTS_DLQ', subjects: ['ally.dlq.>'], max_age: 30 * DAY_NS, duplicate_window: 120e9 });
    // The same numbers in the code (a change there must change the files too; e2e/nats-permissions.spec.ts compares live).
    expect(src).toMatch(/maxAgeMs: 7 \* DAY_MS/);
    expect(src).toMatch(/maxAgeMs: 30 \* DAY_MS/);
    expect(src).toMatch(/duplicate_window: nanos\(2 \* 60 \* 1000\)/);
  });
});

/** Schema validation through kubernetes-models (and @kubernetes-models/cert-manager) when installed. */
async function loadValidators(): Promise<((x: Obj) => Promise<string | undefined>) | undefined> {
  const probe = await import('kubernetes-models/v1/ConfigMap' as string).catch(() => undefined);
  if (!probe) return undefined;
  const crds: Record<string, string[]> = {
    // No published models: checked by the assertions above instead.
    'postgresql.cnpg.io/v1': ['Cluster', 'ScheduledBackup'],
  };
  return async (x: Obj) => {
    const [group, version] = x.apiVersion.includes('/') ? x.apiVersion.split('/') : ['', x.apiVersion];
    if (crds[x.apiVersion]?.includes(x.kind)) return undefined;
    const path = group ? `kubernetes-models/${group}/${version}/${x.kind}` : `kubernetes-models/${version}/${x.kind}`;
    const mod = await import(path).catch(() => undefined);
    if (!mod?.[x.kind]) return `no schema for ${x.apiVersion} ${x.kind}`;
    try {
      new mod[x.kind](x).validate();
      return undefined;
    } catch (err) {
      return String((err as Error).message).slice(0, 500);
    }
  };
}
