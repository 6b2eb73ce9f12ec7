// The built-in cloud provider `fake` (as upstream's fake cloud): instances and load balancers
// described by a YAML file, for tests and local runs. The file is read again whenever it
// changes, so a test can change the cloud while the CCM runs.
//
// --cloud-config (every key optional; unknown keys are refused):
//
//   instances:                 # by Node name; a Node not listed has no instance (exists: false)
//     node-1:
//       exists: true           # instanceExists (default true)
//       shutdown: false        # instanceShutdown (default false)
//       providerID: fake://node-1      # default fake://<node name>
//       instanceType: fake-medium      # default ''
//       zone: zone-a           # topology.kubernetes.io/zone (default '')
//       region: region-1       # topology.kubernetes.io/region (default '')
//       addresses:             # node addresses (default none)
//         - { type: InternalIP, address: 10.0.0.1 }
//       additionalLabels: { example.com/rack: r1 }
//   failures:                  # the first n calls of a method throw; -1: every call, for good
//     instanceMetadata: 2      # also: instanceExists, instanceShutdown, getLoadBalancer,
//     ensureLoadBalancer: -1   #       ensureLoadBalancer, updateLoadBalancer, ensureLoadBalancerDeleted
//   loadBalancer:              # absent: this cloud has no load balancers
//     ingressIP: 192.0.2.10    # what every load balancer gets as status.loadBalancer.ingress
//
// A failure count restarts from zero when its value in the file changes. A file that becomes
// unreadable or invalid while the CCM runs is logged, and the last good content stays in force.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { V1LoadBalancerStatus, V1Node, V1NodeAddress, V1Service } from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { errorText, type Logger } from '../../../../common/log.js';
import {
  CloudConfigError,
  type CloudProvider,
  type CloudProviderInit,
  type InstanceMetadata,
  type InstancesV2,
  type LoadBalancer,
} from '../cloud-provider.js';

export const FAKE_PROVIDER_NAME = 'fake';

export interface FakeInstance {
  exists: boolean;
  shutdown: boolean;
  providerID: string;
  instanceType: string;
  zone: string;
  region: string;
  addresses: V1NodeAddress[];
  additionalLabels: Record<string, string>;
}

const FAILING_METHODS = [
  'instanceMetadata',
  'instanceExists',
  'instanceShutdown',
  'getLoadBalancer',
  'ensureLoadBalancer',
  'updateLoadBalancer',
  'ensureLoadBalancerDeleted',
] as const;
export type FakeMethod = (typeof FAILING_METHODS)[number];

export interface FakeCloudConfig {
  instances: Map<string, FakeInstance>;
  failures: Map<FakeMethod, number>;
  loadBalancer: { ingressIP: string } | undefined;
}

const ADDRESS_TYPES = ['Hostname', 'ExternalIP', 'InternalIP', 'ExternalDNS', 'InternalDNS'];

/** Reads one YAML mapping strictly: every key known, every value of its kind. */
class Reader {
  constructor(private readonly source: string) {}

  fail(path: string, problem: string): never {
    throw new CloudConfigError(`${this.source}: ${path} ${problem}`);
  }

  map(value: unknown, path: string, keys?: readonly string[]): Record<string, unknown> {
    if (value === undefined || value === null) return {};
    if (typeof value !== 'object' || Array.isArray(value)) this.fail(path, 'must be a mapping');
    const record = value as Record<string, unknown>;
    if (keys) {
      for (const key of Object.keys(record)) {
        if (!keys.includes(key))
          this.fail(path ? `${path}.${key}` : key, `is not a known key (known: ${keys.join(', ')})`);
      }
    }
    return record;
  }

  string(value: unknown, path: string, fallback: string): string {
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'string') this.fail(path, 'must be a string');
    return value;
  }

  bool(value: unknown, path: string, fallback: boolean): boolean {
    if (value === undefined || value === null) return fallback;
    if (typeof value !== 'boolean') this.fail(path, 'must be true or false');
    return value;
  }

  count(value: unknown, path: string): number {
    if (value === undefined || value === null) return 0;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < -1)
      this.fail(path, 'must be a whole number of calls, or -1 for every call');
    return value;
  }
}

/** Parses the fake cloud's YAML; throws CloudConfigError naming the bad key. */
export function parseFakeCloudConfig(text: string, source: string): FakeCloudConfig {
  const r = new Reader(source);
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new CloudConfigError(`${source}: not valid YAML: ${errorText(err)}`);
  }
  const top = r.map(doc, '', ['instances', 'failures', 'loadBalancer']);
  const instances = new Map<string, FakeInstance>();
  for (const [name, raw] of Object.entries(r.map(top.instances, 'instances'))) {
    const path = `instances.${name}`;
    const spec = r.map(raw, path, [
      'exists',
      'shutdown',
      'providerID',
      'instanceType',
      'zone',
      'region',
      'addresses',
      'additionalLabels',
    ]);
    if (spec.addresses !== undefined && spec.addresses !== null && !Array.isArray(spec.addresses))
      r.fail(`${path}.addresses`, 'must be a list');
    const addresses = ((spec.addresses as unknown[] | undefined | null) ?? []).map((a, i) => {
      const at = `${path}.addresses[${i}]`;
      const address = r.map(a, at, ['type', 'address']);
      const type = r.string(address.type, `${at}.type`, '');
      if (!ADDRESS_TYPES.includes(type)) r.fail(`${at}.type`, `must be one of ${ADDRESS_TYPES.join(', ')}`);
      const value = r.string(address.address, `${at}.address`, '');
      if (value === '') r.fail(`${at}.address`, 'must be set');
      if (type.endsWith('IP') && isIP(value) === 0)
        r.fail(`${at}.address`, `"${value}" is not an IP address`);
      return { type, address: value };
    });
    const labels: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.map(spec.additionalLabels, `${path}.additionalLabels`))) {
      labels[k] = r.string(v, `${path}.additionalLabels.${k}`, '');
    }
    instances.set(name, {
      exists: r.bool(spec.exists, `${path}.exists`, true),
      shutdown: r.bool(spec.shutdown, `${path}.shutdown`, false),
      providerID: r.string(spec.providerID, `${path}.providerID`, `fake://${name}`),
      instanceType: r.string(spec.instanceType, `${path}.instanceType`, ''),
      zone: r.string(spec.zone, `${path}.zone`, ''),
      region: r.string(spec.region, `${path}.region`, ''),
      addresses,
      additionalLabels: labels,
    });
  }
  const failures = new Map<FakeMethod, number>();
  for (const [method, n] of Object.entries(r.map(top.failures, 'failures', FAILING_METHODS))) {
    failures.set(method as FakeMethod, r.count(n, `failures.${method}`));
  }
  let loadBalancer: FakeCloudConfig['loadBalancer'];
  if (top.loadBalancer !== undefined) {
    const lb = r.map(top.loadBalancer, 'loadBalancer', ['ingressIP']);
    const ingressIP = r.string(lb.ingressIP, 'loadBalancer.ingressIP', '');
    if (isIP(ingressIP) === 0) r.fail('loadBalancer.ingressIP', `"${ingressIP}" is not an IP address`);
    loadBalancer = { ingressIP };
  }
  return { instances, failures, loadBalancer };
}

const EMPTY: FakeCloudConfig = { instances: new Map(), failures: new Map(), loadBalancer: undefined };

/** The fake cloud's file, read again whenever its content changes; the last good one wins. */
class FakeCloudFile {
  private text: string | undefined;
  private current: FakeCloudConfig = EMPTY;
  private lastProblem = '';
  /** Calls made so far per method, since its failure count last changed. */
  private readonly calls = new Map<FakeMethod, number>();

  constructor(
    private readonly path: string,
    private readonly log: Logger,
  ) {
    if (path) this.load(true);
  }

  config(): FakeCloudConfig {
    if (this.path) this.load(false);
    return this.current;
  }

  /** Throws for the first n calls of `method` (n from `failures`), for every call with -1. */
  maybeFail(method: FakeMethod): void {
    const limit = this.config().failures.get(method) ?? 0;
    const made = (this.calls.get(method) ?? 0) + 1;
    this.calls.set(method, made);
    if (limit === -1 || made <= limit) {
      throw new Error(
        `fake cloud: ${method} failure ${made}${limit === -1 ? '' : ` of ${limit}`} (configured)`,
      );
    }
  }

  private load(initial: boolean): void {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if (initial) throw new CloudConfigError(`cannot read --cloud-config ${this.path}: ${errorText(err)}`);
      this.problem(`cannot read: ${errorText(err)}`);
      return;
    }
    if (text === this.text) return;
    let next: FakeCloudConfig;
    try {
      next = parseFakeCloudConfig(text, this.path);
    } catch (err) {
      if (initial) throw err;
      this.problem(errorText(err));
      return;
    }
    for (const method of FAILING_METHODS) {
      if ((next.failures.get(method) ?? 0) !== (this.current.failures.get(method) ?? 0))
        this.calls.delete(method);
    }
    if (!initial) this.log.info({ path: this.path }, 'fake cloud configuration changed');
    this.text = text;
    this.current = next;
    this.lastProblem = '';
  }

  private problem(problem: string): void {
    if (problem === this.lastProblem) return;
    this.lastProblem = problem;
    this.log.warn(
      { path: this.path, error: problem },
      'fake cloud configuration not reloaded; keeping the last good one',
    );
  }
}

function checkSignal(signal: AbortSignal): void {
  if (signal.aborted) throw new Error('fake cloud: call aborted');
}

class FakeInstances implements InstancesV2 {
  constructor(private readonly file: FakeCloudFile) {}

  private instance(node: V1Node): FakeInstance | undefined {
    return this.file.config().instances.get(node.metadata?.name ?? '');
  }

  instanceExists(node: V1Node, signal: AbortSignal): Promise<boolean> {
    checkSignal(signal);
    this.file.maybeFail('instanceExists');
    return Promise.resolve(this.instance(node)?.exists ?? false);
  }

  instanceShutdown(node: V1Node, signal: AbortSignal): Promise<boolean> {
    checkSignal(signal);
    this.file.maybeFail('instanceShutdown');
    return Promise.resolve(this.instance(node)?.shutdown ?? false);
  }

  instanceMetadata(node: V1Node, signal: AbortSignal): Promise<InstanceMetadata> {
    checkSignal(signal);
    this.file.maybeFail('instanceMetadata');
    const instance = this.instance(node);
    if (!instance?.exists) {
      return Promise.reject(new Error(`fake cloud: no instance for node ${node.metadata?.name ?? ''}`));
    }
    return Promise.resolve({
      providerID: instance.providerID,
      instanceType: instance.instanceType,
      nodeAddresses: instance.addresses.map((a) => ({ ...a })),
      zone: instance.zone,
      region: instance.region,
      additionalLabels: { ...instance.additionalLabels },
    });
  }
}

function serviceKey(service: V1Service): string {
  return `${service.metadata?.namespace ?? ''}/${service.metadata?.name ?? ''}`;
}

class FakeLoadBalancer implements LoadBalancer {
  /** Services that have a load balancer. */
  private readonly balancers = new Set<string>();

  constructor(private readonly file: FakeCloudFile) {}

  private status(): V1LoadBalancerStatus {
    const ip = this.file.config().loadBalancer?.ingressIP;
    return ip ? { ingress: [{ ip }] } : {};
  }

  getLoadBalancer(
    _clusterName: string,
    service: V1Service,
    signal: AbortSignal,
  ): Promise<{ status: V1LoadBalancerStatus; exists: boolean }> {
    checkSignal(signal);
    this.file.maybeFail('getLoadBalancer');
    const exists = this.balancers.has(serviceKey(service));
    return Promise.resolve({ status: exists ? this.status() : {}, exists });
  }

  /** cloud-provider's DefaultLoadBalancerName: "a" + the UID without dashes, 32 characters at most. */
  getLoadBalancerName(_clusterName: string, service: V1Service): string {
    return `a${service.metadata?.uid ?? ''}`.replaceAll('-', '').slice(0, 32);
  }

  ensureLoadBalancer(
    _clusterName: string,
    service: V1Service,
    _nodes: V1Node[],
    signal: AbortSignal,
  ): Promise<V1LoadBalancerStatus> {
    checkSignal(signal);
    this.file.maybeFail('ensureLoadBalancer');
    this.balancers.add(serviceKey(service));
    return Promise.resolve(this.status());
  }

  updateLoadBalancer(
    _clusterName: string,
    _service: V1Service,
    _nodes: V1Node[],
    signal: AbortSignal,
  ): Promise<void> {
    checkSignal(signal);
    this.file.maybeFail('updateLoadBalancer');
    return Promise.resolve();
  }

  ensureLoadBalancerDeleted(_clusterName: string, service: V1Service, signal: AbortSignal): Promise<void> {
    checkSignal(signal);
    this.file.maybeFail('ensureLoadBalancerDeleted');
    this.balancers.delete(serviceKey(service));
    return Promise.resolve();
  }
}

export class FakeCloud implements CloudProvider {
  readonly name = FAKE_PROVIDER_NAME;
  private readonly instances: FakeInstances;
  private readonly balancer: FakeLoadBalancer;

  constructor(private readonly file: FakeCloudFile) {
    this.instances = new FakeInstances(file);
    this.balancer = new FakeLoadBalancer(file);
  }

  instancesV2(): InstancesV2 {
    return this.instances;
  }

  /** undefined while the file has no `loadBalancer` section. */
  loadBalancer(): LoadBalancer | undefined {
    return this.file.config().loadBalancer ? this.balancer : undefined;
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}

export function createFakeCloud(init: CloudProviderInit): Promise<CloudProvider> {
  const log = init.log.child({ provider: FAKE_PROVIDER_NAME });
  if (!init.cloudConfigPath)
    log.info('no --cloud-config: the fake cloud has no instances and no load balancers');
  return Promise.resolve(new FakeCloud(new FakeCloudFile(init.cloudConfigPath, log)));
}
