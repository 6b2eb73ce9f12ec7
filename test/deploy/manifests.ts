// The deploy/ manifests as the tests see them: every kustomize entry point built with
// `kubectl kustomize` (once per test process), and the pieces of Kubernetes objects the
// cross-checks read. Not a test file: test/deploy/*.test.ts import it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';

/** The repository root (this file runs from dist/test/deploy/). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const DEPLOY = join(ROOT, 'deploy');

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    fieldRef?: { fieldPath: string };
    configMapKeyRef?: { name: string; key: string };
    secretKeyRef?: { name: string; key: string };
  };
}

export interface HttpGetProbe {
  httpGet?: { host?: string; port: number | string; path?: string; scheme?: string };
}

export interface ContainerPort {
  name?: string;
  containerPort: number;
  hostPort?: number;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: ContainerPort[];
  livenessProbe?: HttpGetProbe;
  readinessProbe?: HttpGetProbe;
  startupProbe?: HttpGetProbe;
  volumeMounts?: VolumeMount[];
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
}

export interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  configMap?: { name: string; items?: { key: string; path: string }[] };
  secret?: { secretName: string };
  projected?: {
    sources: {
      serviceAccountToken?: { path: string; audience?: string; expirationSeconds?: number };
      configMap?: { name: string; items?: { key: string; path: string }[] };
    }[];
  };
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  hostNetwork?: boolean;
  priorityClassName?: string;
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  tolerations?: { key?: string; operator?: string; effect?: string }[];
}

/** A Pod, or the pod template of a Deployment or DaemonSet. */
export interface Workload {
  kind: string;
  name: string;
  namespace: string;
  podLabels: Record<string, string>;
  pod: PodSpec;
  replicas: number | undefined;
}

const WORKLOAD_KINDS = new Set(['Pod', 'Deployment', 'DaemonSet', 'StatefulSet']);

export function workloads(objects: readonly KubeObject[]): Workload[] {
  const out: Workload[] = [];
  for (const o of objects) {
    if (!WORKLOAD_KINDS.has(o.kind)) continue;
    if (o.kind === 'Pod') {
      out.push({
        kind: o.kind,
        name: o.metadata.name,
        namespace: o.metadata.namespace ?? 'default',
        podLabels: o.metadata.labels ?? {},
        pod: o.spec as PodSpec,
        replicas: undefined,
      });
      continue;
    }
    const spec = o.spec as {
      replicas?: number;
      template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec };
    };
    out.push({
      kind: o.kind,
      name: o.metadata.name,
      namespace: o.metadata.namespace ?? 'default',
      podLabels: spec.template.metadata?.labels ?? {},
      pod: spec.template.spec,
      replicas: o.kind === 'Deployment' ? (spec.replicas ?? 1) : undefined,
    });
  }
  return out;
}

// ---- entry points ---------------------------------------------------------------------------

/** Every folder under deploy/ with a kustomization.yaml, relative to the repository root. */
export function kustomizeEntryPoints(): string[] {
  const found: string[] = [];
  const walk = (dir: string): void => {
    if (existsSync(join(dir, 'kustomization.yaml'))) found.push(relative(ROOT, dir));
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
    }
  };
  walk(DEPLOY);
  return found.sort();
}

/** Why the kustomize tests cannot run here, or undefined when kubectl is on the PATH. */
export const kubectlMissing: string | undefined = (() => {
  const r = spawnSync('kubectl', ['version', '--client=true'], { encoding: 'utf8' });
  if (r.error)
    return `kubectl is not on the PATH (${r.error.message}): cannot build the kustomize entry points`;
  if (r.status !== 0) return `kubectl version --client failed: ${r.stderr.trim()}`;
  return undefined;
})();

const built = new Map<string, KubeObject[]>();

/** `kubectl kustomize <dir>`, parsed; throws with kubectl's message when the build fails. */
export function build(entryPoint: string): KubeObject[] {
  const cached = built.get(entryPoint);
  if (cached) return cached;
  const r = spawnSync('kubectl', ['kustomize', join(ROOT, entryPoint)], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${entryPoint} failed:\n${r.stderr}`);
  const objects = parseAllDocuments(r.stdout).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${entryPoint}: ${doc.errors.map(String).join('; ')}`);
    return doc.toJS() as KubeObject;
  });
  built.set(entryPoint, objects);
  return objects;
}

/** A YAML file of deploy/ (or anywhere under the root), parsed. */
export function readYaml(path: string): unknown {
  return parse(readFileSync(join(ROOT, path), 'utf8'));
}

export function find(objects: readonly KubeObject[], kind: string, name?: string): KubeObject[] {
  return objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
}

export function only(objects: readonly KubeObject[], kind: string, name?: string): KubeObject {
  const hits = find(objects, kind, name);
  if (hits.length !== 1) {
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${hits.length}`);
  }
  return hits[0] as KubeObject;
}

// ---- containers and their command lines -------------------------------------------------------

export type BinaryName = 'proxy-server' | 'proxy-agent' | 'konnectivity-ccm';

/** Which of our programs a container runs (its command is the image's /<bin> path). */
export function binaryOf(container: Container): BinaryName | undefined {
  const command = container.command?.[0];
  for (const bin of ['proxy-server', 'proxy-agent', 'konnectivity-ccm'] as const) {
    if (command === `/${bin}`) return bin;
  }
  return undefined;
}

export interface RunnableContainer {
  workload: Workload;
  container: Container;
  binary: BinaryName;
}

export function ourContainers(objects: readonly KubeObject[]): RunnableContainer[] {
  const out: RunnableContainer[] = [];
  for (const workload of workloads(objects)) {
    for (const container of workload.pod.containers) {
      const binary = binaryOf(container);
      if (binary) out.push({ workload, container, binary });
    }
  }
  return out;
}

/** The value of `--name=value` in args (the last one wins, as pflag); undefined when absent. */
export function flagValue(args: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  for (const arg of args) {
    if (arg === `--${name}`) value = 'true';
    else if (arg.startsWith(`--${name}=`)) value = arg.slice(name.length + 3);
  }
  return value;
}

/**
 * Expands $(VAR) references as the kubelet does: a defined variable is replaced, $$ is a
 * literal $, and an undefined reference stays as written (which is what makes it a bug).
 */
export function expandEnvRefs(text: string, env: ReadonlyMap<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string | undefined) => {
    if (name === undefined) return '$';
    return env.get(name) ?? whole;
  });
}

/** The $(VAR) names an arg refers to. */
export function envRefs(text: string): string[] {
  return [...text.replace(/\$\$/g, '').matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)].map((m) => m[1] ?? '');
}

/** The named port's number, or the number itself. */
export function resolvePort(container: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

/** The volume a path inside the container lives on, and the path relative to its mount. */
export function mountFor(
  workload: Workload,
  container: Container,
  path: string,
): { mount: VolumeMount; volume: Volume | undefined; rest: string } | undefined {
  let best: VolumeMount | undefined;
  for (const m of container.volumeMounts ?? []) {
    const base = m.mountPath.replace(/\/+$/, '');
    if ((path === base || path.startsWith(`${base}/`)) && base.length > (best?.mountPath.length ?? -1)) {
      best = m;
    }
  }
  if (!best) return undefined;
  const mount = best;
  return {
    mount,
    volume: workload.pod.volumes?.find((v) => v.name === mount.name),
    rest: path.slice(mount.mountPath.replace(/\/+$/, '').length).replace(/^\//, ''),
  };
}

export function labelsMatch(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
