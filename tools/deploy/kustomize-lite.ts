/**
 * A small kustomize for the checks in e2e/k8s-manifests.spec.ts on machines
 * without kubectl: exactly the features k8s/ uses (resources, namespace,
 * labels, images, configMapGenerator with merge, JSON 6902 and strategic-merge
 * patches with targets, `$patch: delete`). Where kubectl is installed the test
 * uses `kubectl kustomize` and also checks that this renders the same objects.
 * Not a general kustomize; generated names get a content hash of its own.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import YAML from 'yaml';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };

interface Built {
  objects: Obj[];
  /** Generated ConfigMaps by their name before the hash suffix. */
  generated: Set<Obj>;
}

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'ClusterIssuer', 'StorageClass', 'CustomResourceDefinition', 'PersistentVolume']);
/** List fields merged item by item (by `name`) in a strategic merge patch. */
const MERGE_BY_NAME = new Set(['containers', 'initContainers', 'env', 'volumes', 'volumeMounts', 'ports', 'envFrom']);

const clone = <T>(v: T): T => structuredClone(v);

function load(path: string): Obj[] {
  return YAML.parseAllDocuments(readFileSync(path, 'utf8'))
    .map((d) => d.toJS() as Obj)
    .filter((o) => o && typeof o === 'object');
}

function build(dir: string): Built {
  const k = YAML.parse(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) ?? {};
  const objects: Obj[] = [];
  const generated = new Set<Obj>();
  for (const res of k.resources ?? []) {
    const path = join(dir, res);
    if (statSync(path).isDirectory()) {
      const sub = build(path);
      objects.push(...sub.objects);
      sub.generated.forEach((g) => generated.add(g));
    } else {
      objects.push(...load(path));
    }
  }
  for (const gen of k.configMapGenerator ?? []) {
    const data: Record<string, string> = {};
    for (const f of gen.files ?? []) {
      const [key, file] = String(f).includes('=') ? String(f).split('=') : [basename(f), f];
      data[key] = readFileSync(join(dir, file), 'utf8');
    }
    for (const l of gen.literals ?? []) {
      const i = String(l).indexOf('=');
      data[String(l).slice(0, i)] = String(l).slice(i + 1);
    }
    const existing = [...generated].find((g) => g.metadata.name === gen.name);
    if (gen.behavior === 'merge' || gen.behavior === 'replace') {
      if (!existing) throw new Error(`configMapGenerator ${gen.name}: nothing to ${gen.behavior}`);
      existing.data = gen.behavior === 'merge' ? { ...existing.data, ...data } : data;
    } else {
      const cm: Obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: gen.name }, data };
      objects.push(cm);
      generated.add(cm);
    }
  }
  for (const p of k.patches ?? []) {
    const text: string = p.path ? readFileSync(join(dir, p.path), 'utf8') : p.patch;
    const parsed = YAML.parseAllDocuments(text).map((d) => d.toJS());
    const isJson6902 = Array.isArray(parsed[0]);
    // A JSON 6902 patch, or one or more strategic-merge documents (each naming its object unless `target` is given).
    for (const doc of isJson6902 ? [parsed[0]] : parsed) {
      const t = p.target ?? { kind: doc?.kind, name: doc?.metadata?.name };
      const targets = objects.filter((o) => (!t.kind || o.kind === t.kind) && (!t.name || o.metadata.name === t.name));
      for (const o of targets) {
        if (isJson6902) for (const op of doc) applyJsonPatch(o, op);
        else if (doc?.$patch === 'delete') objects.splice(objects.indexOf(o), 1);
        else merge(o, stripMeta(doc), '');
      }
    }
  }
  if (k.namespace) {
    for (const o of objects) {
      if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
      if (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding') {
        for (const s of o.subjects ?? []) if (s.kind === 'ServiceAccount') s.namespace = k.namespace;
      }
    }
  }
  for (const l of k.labels ?? []) for (const o of objects) o.metadata.labels = { ...(o.metadata.labels ?? {}), ...l.pairs };
  for (const img of k.images ?? []) {
    for (const o of objects) {
      for (const c of containersOf(o)) {
        const [name, tag] = splitImage(c.image);
        if (name !== img.name) continue;
        c.image = `${img.newName ?? name}${img.newTag ?? tag ? `:${img.newTag ?? tag}` : ''}`;
      }
    }
  }
  return { objects, generated };
}

/** Strategic-merge patches carry the target's identity; the target selector already chose the objects. */
function stripMeta(patch: any): any {
  const p = clone(patch);
  delete p.apiVersion;
  delete p.kind;
  if (p.metadata) {
    delete p.metadata.name;
    if (!Object.keys(p.metadata).length) delete p.metadata;
  }
  return p;
}

function merge(target: any, patch: any, key: string): any {
  if (Array.isArray(patch)) {
    if (!MERGE_BY_NAME.has(key) || !Array.isArray(target)) return clone(patch);
    // Like kustomize: the patch's items (merged into their originals) first, then the untouched originals.
    const named = (t: any) => t?.name !== undefined;
    const merged = patch.map((item) => {
      const original = target.find((t) => named(t) && t.name === item?.name);
      return original ? merge(original, item, '') : clone(item);
    });
    return [...merged, ...target.filter((t) => !patch.some((item) => named(t) && t.name === item?.name))];
  }
  if (patch && typeof patch === 'object') {
    const out = target && typeof target === 'object' && !Array.isArray(target) ? target : {};
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = merge(out[k], v, k);
    }
    return out;
  }
  return patch;
}

function applyJsonPatch(doc: any, op: { op: string; path: string; value?: unknown }): void {
  const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const last = parts.pop()!;
  let parent = doc;
  for (const p of parts) {
    parent = Array.isArray(parent) ? parent[Number(p)] : parent?.[p];
    if (parent === undefined) throw new Error(`JSON patch ${op.op} ${op.path}: missing ${p}`);
  }
  if (op.op === 'remove') {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else if (op.op === 'add' && Array.isArray(parent)) {
    parent.splice(last === '-' ? parent.length : Number(last), 0, clone(op.value));
  } else if (op.op === 'add' || op.op === 'replace') {
    if (op.op === 'replace' && !(last in parent)) throw new Error(`JSON patch replace ${op.path}: nothing there`);
    parent[last] = clone(op.value);
  } else {
    throw new Error(`JSON patch op ${op.op} is not supported`);
  }
}

function podSpecOf(o: Obj): any {
  if (o.kind === 'CronJob') return o.spec?.jobTemplate?.spec?.template?.spec;
  return ['Deployment', 'StatefulSet', 'Job', 'DaemonSet'].includes(o.kind) ? o.spec?.template?.spec : undefined;
}

function containersOf(o: Obj): any[] {
  const spec = podSpecOf(o);
  return spec ? [...(spec.initContainers ?? []), ...(spec.containers ?? [])] : [];
}

function splitImage(image: string): [string, string | undefined] {
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > slash ? [image.slice(0, colon), image.slice(colon + 1)] : [image, undefined];
}

/** Renders an overlay (or base) directory like `kubectl kustomize <dir>`. */
export function renderKustomization(dir: string): Obj[] {
  if (!existsSync(join(dir, 'kustomization.yaml'))) throw new Error(`${dir}: no kustomization.yaml`);
  const { objects, generated } = build(dir);
  const renamed = new Map<string, string>();
  for (const cm of generated) {
    const hash = createHash('sha256').update(JSON.stringify(cm.data)).digest('hex').slice(0, 10);
    renamed.set(cm.metadata.name, `${cm.metadata.name}-${hash}`);
    cm.metadata.name = `${cm.metadata.name}-${hash}`;
  }
  const fix = (n: any): void => {
    if (Array.isArray(n)) return n.forEach(fix);
    if (!n || typeof n !== 'object') return;
    for (const ref of [n.configMapRef, n.configMapKeyRef, n.configMap]) if (ref?.name && renamed.has(ref.name)) ref.name = renamed.get(ref.name);
    Object.values(n).forEach(fix);
  };
  objects.forEach(fix);
  return objects;
}

