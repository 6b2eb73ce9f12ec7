// The cloud-node controller (k8s.io/cloud-provider controllers/node CloudNodeController).
// A Node registered by a kubelet with --cloud-provider=external carries the taint
// node.cloudprovider.kubernetes.io/uninitialized; this controller fills in what the cloud
// knows (spec.providerID, instance-type / zone / region labels and the provider's additional
// labels, status.addresses) and removes the taint. As upstream it takes two writes: one patch
// of the Node (labels, providerID, taints; resourceVersion-guarded, retried on conflict) and
// one patch of its status for the addresses. Initialised Nodes get their beta topology labels
// reconciled on every sync and their addresses refreshed every --node-status-update-frequency.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Node, V1NodeAddress, V1Taint } from '@kubernetes/client-node';
import type { Logger } from '../../../common/log.js';
// One line for client-node's ApiException (its own message holds the whole body and headers).
import { apiErrorText, apiStatus } from '../../../common/kube/client.js';
import type { InstanceMetadata, InstancesV2 } from '../cloud/cloud-provider.js';
import type { Controller, ControllerContext, EventTarget, Informer, WorkQueue } from '../controller.js';

export const TAINT_UNINITIALIZED = 'node.cloudprovider.kubernetes.io/uninitialized';
/** Set by a kubelet started with --node-ip and an external cloud provider. */
export const ANNOTATION_PROVIDED_NODE_IP = 'alpha.kubernetes.io/provided-node-ip';

export const LABELS = {
  zone: 'topology.kubernetes.io/zone',
  region: 'topology.kubernetes.io/region',
  instanceType: 'node.kubernetes.io/instance-type',
  betaZone: 'failure-domain.beta.kubernetes.io/zone',
  betaRegion: 'failure-domain.beta.kubernetes.io/region',
  betaInstanceType: 'beta.kubernetes.io/instance-type',
} as const;

/** Upstream's labelReconcileInfo: the beta label is the source of truth, the GA one follows. */
const LABEL_RECONCILE: readonly { primary: string; secondary: string }[] = [
  { primary: LABELS.betaZone, secondary: LABELS.zone },
  { primary: LABELS.betaRegion, secondary: LABELS.region },
  { primary: LABELS.betaInstanceType, secondary: LABELS.instanceType },
];

/** A provider's additional labels may not use these namespaces (upstream's rule). */
const K8S_LABEL_NAMESPACE = /(^|\.)(kubernetes|k8s)\.io\//;

/** Upstream's UpdateNodeSpecBackoff: 50 ms with full jitter; we re-read the Node between tries. */
const CONFLICT_RETRIES = 20;
const CONFLICT_DELAY_MS = 50;

export class CloudNodeController implements Controller {
  readonly name = 'cloud-node';

  async run(ctx: ControllerContext, signal: AbortSignal): Promise<void> {
    const instances = ctx.cloud.instancesV2();
    const log = ctx.log.child({ controller: this.name });
    if (!instances) {
      log.warn('the cloud provider has no instances: cloud-node does nothing');
      await untilAborted(signal);
      return;
    }
    await new CloudNodeSync(ctx, instances, log, signal).run();
  }
}

class CloudNodeSync {
  private readonly queue: WorkQueue;

  constructor(
    private readonly ctx: ControllerContext,
    private readonly instances: InstancesV2,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
  ) {
    this.queue = ctx.newQueue('cloud-node');
  }

  /** A call, so that a check after an await reads the signal anew (no narrowing). */
  private isStopped(): boolean {
    return this.signal.aborted;
  }

  async run(): Promise<void> {
    const { ctx, queue, signal } = this;
    const enqueue = (node: V1Node) => {
      const name = node.metadata?.name;
      if (name) queue.add(name);
    };
    ctx.nodes.onAdd(enqueue);
    ctx.nodes.onUpdate((_old, node) => enqueue(node));
    const stop = () => queue.shutDown();
    signal.addEventListener('abort', stop, { once: true });
    try {
      if (!(await waitForSync([ctx.nodes], signal))) return;
      for (const node of ctx.nodes.list()) enqueue(node);
      const workers = Array.from({ length: workerCount(ctx) }, () => this.worker());
      await Promise.all([...workers, this.refreshAddressesPeriodically()]);
    } finally {
      signal.removeEventListener('abort', stop);
      queue.shutDown();
    }
  }

  private async worker(): Promise<void> {
    const { queue } = this;
    for (;;) {
      const name = await queue.get();
      if (name === undefined) return;
      const started = performance.now();
      let failed = false;
      try {
        await this.syncNode(name);
        queue.forget(name);
      } catch (err) {
        failed = true;
        if (!this.isStopped()) {
          queue.addRateLimited(name);
          this.reportFailure(name, err);
        }
      } finally {
        this.ctx.observeSync('cloud-node', (performance.now() - started) / 1000, failed);
        queue.done(name);
      }
    }
  }

  /** Logged, and a Warning Event on the Node (the recorder folds repeats into one Event's count). */
  private reportFailure(name: string, err: unknown): void {
    const message = apiErrorText(err);
    this.log.info(
      { node: name, err: message, requeues: this.queue.numRequeues(name) },
      'error syncing node, requeuing',
    );
    const node = this.ctx.nodes.get(name);
    if (node) this.ctx.events.event(nodeRef(node), 'Warning', 'SyncFailed', message);
  }

  /** One Node: initialise it while it carries the cloud taint, else reconcile its labels. */
  private async syncNode(name: string): Promise<void> {
    const node = this.ctx.nodes.get(name);
    if (!node) return;
    if (!hasTaint(node, TAINT_UNINITIALIZED)) {
      await this.reconcileLabels(node);
      return;
    }
    this.log.info({ node: name }, 'initializing node with cloud provider');
    const metadata = await this.instanceMetadata(node);
    const modify = nodeModifier(node, metadata, this.log);
    const initialised = await this.patchWithRetry(node, modify);
    if (!initialised) return;
    // Right away, so that the addresses do not wait for the next refresh.
    await this.updateAddresses(initialised, metadata);
    this.log.info({ node: name }, 'successfully initialized node with cloud provider');
    this.ctx.events.event(nodeRef(node), 'Normal', 'Synced', 'Node synced successfully');
  }

  private async instanceMetadata(node: V1Node): Promise<InstanceMetadata> {
    const name = node.metadata?.name ?? '';
    let metadata: InstanceMetadata;
    try {
      metadata = await this.instances.instanceMetadata(node, this.signal);
    } catch (err) {
      throw new Error(`failed to get instance metadata for node ${name}: ${apiErrorText(err)}`, {
        cause: err,
      });
    }
    // spec.providerID is set only here and never reconciled: without one, keep the taint.
    if (!metadata.providerID) {
      const existing = node.spec?.providerID;
      if (!existing) throw new Error(`cloud provider does not set node provider ID for node ${name}`);
      metadata = { ...metadata, providerID: existing };
    }
    // A kubelet --node-ip the cloud does not know would never show up in the addresses.
    try {
      withProvidedNodeIp(node, metadata.nodeAddresses);
    } catch (err) {
      throw new Error(`provided node ip for node "${name}" is not valid: ${apiErrorText(err)}`, {
        cause: err,
      });
    }
    return metadata;
  }

  /**
   * Patches the Node with `modify`'s changes, guarded by its resourceVersion; on a conflict
   * re-reads it and tries again. Undefined when the Node is gone.
   */
  private async patchWithRetry(node: V1Node, modify: NodeModifier): Promise<V1Node | undefined> {
    const name = node.metadata?.name ?? '';
    let current = node;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.patchNode(name, modify(current));
      } catch (err) {
        const status = apiStatus(err);
        if (status === 404) return undefined;
        if (status !== 409 || attempt >= CONFLICT_RETRIES) throw err;
      }
      await sleep(CONFLICT_DELAY_MS * (1 + Math.random()), undefined, { signal: this.signal });
      const fresh = await this.readNode(name);
      if (!fresh) return undefined;
      current = fresh;
    }
  }

  /** Upstream's reconcileNodeLabels: GA labels follow their beta twins. */
  private async reconcileLabels(node: V1Node): Promise<void> {
    const labels = node.metadata?.labels;
    if (!labels) return;
    const update: Record<string, string> = {};
    for (const { primary, secondary } of LABEL_RECONCILE) {
      const value = labels[primary];
      if (value !== undefined && labels[secondary] !== value) update[secondary] = value;
    }
    if (Object.keys(update).length === 0) return;
    const name = node.metadata?.name ?? '';
    try {
      await this.patchNode(name, { metadata: { labels: update } });
    } catch (err) {
      throw new Error(
        `failed to update labels ${JSON.stringify(update)} for node ${name}: ${apiErrorText(err)}`,
        {
          cause: err,
        },
      );
    }
    this.log.debug({ node: name, labels: update }, 'reconciled node labels');
  }

  /** Upstream's UpdateNodeStatus loop: the addresses of every initialised Node. */
  private async refreshAddressesPeriodically(): Promise<void> {
    const period = this.ctx.options.nodeStatusUpdateFrequencyMs;
    while (!this.isStopped()) {
      const started = performance.now();
      const nodes = this.ctx.nodes.list().filter((n) => !hasTaint(n, TAINT_UNINITIALIZED));
      // As upstream's ParallelizeUntil: a few Nodes at a time.
      let next = 0;
      const updateNext = async (): Promise<void> => {
        for (let node = nodes[next++]; node && !this.isStopped(); node = nodes[next++]) {
          await this.refreshAddresses(node);
        }
      };
      await Promise.all(Array.from({ length: workerCount(this.ctx) }, updateNext));
      if (this.isStopped()) return;
      this.log.debug(
        { nodes: nodes.length, ms: Math.round(performance.now() - started) },
        'updated node addresses',
      );
      if (!(await pause(period, this.signal))) return;
    }
  }

  private async refreshAddresses(node: V1Node): Promise<void> {
    try {
      const metadata = await this.instances.instanceMetadata(node, this.signal);
      await this.updateAddresses(node, metadata);
    } catch (err) {
      if (this.isStopped()) return;
      this.log.error(
        { node: node.metadata?.name, err: apiErrorText(err) },
        'error getting instance metadata for node addresses',
      );
    }
  }

  /** Upstream's updateNodeAddress: patches status.addresses when they differ. Logs, never throws. */
  private async updateAddresses(node: V1Node, metadata: InstanceMetadata): Promise<void> {
    const name = node.metadata?.name ?? '';
    if (hasTaint(node, TAINT_UNINITIALIZED)) return;
    let addresses = metadata.nodeAddresses;
    if (addresses.length === 0) return;
    // Without a Hostname from the cloud, keep the one the kubelet reported.
    if (!addresses.some((a) => a.type === 'Hostname')) {
      addresses = [...addresses, ...(node.status?.addresses ?? []).filter((a) => a.type === 'Hostname')];
    }
    try {
      addresses = withProvidedNodeIp(node, addresses);
    } catch (err) {
      this.log.error({ node: name, err: apiErrorText(err) }, 'failed to update node addresses');
      return;
    }
    if (!addressesChanged(node.status?.addresses ?? [], addresses)) return;
    const plain = addresses.map((a) => ({ type: a.type, address: a.address }));
    try {
      // A merge patch replaces the list whole (a strategic one would merge it by type).
      await this.ctx.core.patchNodeStatus(
        { name, body: { status: { addresses: plain } } },
        this.ctx.kube.k8s.setHeaderOptions('Content-Type', this.ctx.kube.k8s.PatchStrategy.MergePatch),
      );
      this.log.info({ node: name, addresses: plain }, 'updated node addresses');
    } catch (err) {
      this.log.error({ node: name, err: apiErrorText(err) }, 'error patching node with cloud ip addresses');
    }
  }

  private async patchNode(name: string, body: object): Promise<V1Node> {
    const { k8s } = this.ctx.kube;
    return this.ctx.core.patchNode(
      { name, body },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
    );
  }

  private async readNode(name: string): Promise<V1Node | undefined> {
    try {
      return await this.ctx.core.readNode({ name });
    } catch (err) {
      if (apiStatus(err) === 404) return undefined;
      throw err;
    }
  }
}

/** A Node in, the strategic merge patch that initialises it out. */
type NodeModifier = (node: V1Node) => object;

/**
 * Upstream's node modifiers (getNodeModifiersFromCloudProvider) plus the taint removal, as
 * one patch: providerID when unset, instance-type / zone / region labels (GA and beta), the
 * additional labels that are neither Kubernetes-namespaced nor already set, and the taints
 * without the cloud taint. The resourceVersion makes the patch fail on a concurrent change:
 * taints have no merge key, so the list is replaced whole and must not lose another's taint.
 */
function nodeModifier(node: V1Node, metadata: InstanceMetadata, log: Logger): NodeModifier {
  const setProviderID = !node.spec?.providerID && metadata.providerID !== '';
  const cloudLabels: Record<string, string> = {};
  if (metadata.instanceType) {
    cloudLabels[LABELS.betaInstanceType] = metadata.instanceType;
    cloudLabels[LABELS.instanceType] = metadata.instanceType;
  }
  if (metadata.zone) {
    cloudLabels[LABELS.betaZone] = metadata.zone;
    cloudLabels[LABELS.zone] = metadata.zone;
  }
  if (metadata.region) {
    cloudLabels[LABELS.betaRegion] = metadata.region;
    cloudLabels[LABELS.region] = metadata.region;
  }
  const additional = Object.entries(metadata.additionalLabels ?? {});
  return (current) => {
    const labels = current.metadata?.labels ?? {};
    const changed: Record<string, string> = {};
    for (const [key, value] of Object.entries(cloudLabels)) if (labels[key] !== value) changed[key] = value;
    for (const [key, value] of additional) {
      if (K8S_LABEL_NAMESPACE.test(key)) {
        log.warn(
          { node: current.metadata?.name, label: key },
          'discarding node label with kubernetes namespace',
        );
      } else if (key in labels) {
        if (labels[key] !== value)
          log.warn(
            { node: current.metadata?.name, label: key },
            'discarding node label that is already present',
          );
      } else {
        changed[key] = value;
      }
    }
    const taints = (current.spec?.taints ?? []).filter((t) => t.key !== TAINT_UNINITIALIZED).map(plainTaint);
    return {
      metadata: {
        resourceVersion: current.metadata?.resourceVersion,
        ...(Object.keys(changed).length > 0 ? { labels: changed } : {}),
      },
      spec: { ...(setProviderID ? { providerID: metadata.providerID } : {}), taints },
    };
  };
}

export function hasTaint(node: V1Node, key: string, effect?: string): boolean {
  return (node.spec?.taints ?? []).some(
    (t) => t.key === key && (effect === undefined || t.effect === effect),
  );
}

/** A taint as the API's JSON has it (client-node's model holds timeAdded as a Date). */
export function plainTaint(t: V1Taint): Record<string, string> {
  const out: Record<string, string> = { key: t.key, effect: t.effect };
  if (t.value !== undefined) out.value = t.value;
  const added: unknown = t.timeAdded;
  if (added instanceof Date) out.timeAdded = added.toISOString().replace(/\.\d+Z$/, 'Z');
  else if (typeof added === 'string') out.timeAdded = added;
  return out;
}

export function nodeRef(node: V1Node): EventTarget {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name: node.metadata?.name, uid: node.metadata?.uid } };
}

/** Upstream's nodeAddressesChangeDetected. */
export function addressesChanged(before: readonly V1NodeAddress[], after: readonly V1NodeAddress[]): boolean {
  if (before.length !== after.length) return true;
  const byType = new Map(before.map((a) => [a.type, a.address]));
  return after.some((a) => byType.get(a.type) !== a.address);
}

/**
 * Upstream's GetNodeAddressesFromNodeIP, when the Node has the provided-node-ip annotation:
 * the addresses matching the kubelet's --node-ip come first and are the only ones of their
 * type; the others follow. Throws when the annotation is malformed or names an IP the cloud
 * did not report.
 */
export function withProvidedNodeIp(node: V1Node, addresses: readonly V1NodeAddress[]): V1NodeAddress[] {
  const provided = node.metadata?.annotations?.[ANNOTATION_PROVIDED_NODE_IP];
  if (provided === undefined) return [...addresses];
  const nodeIps = parseNodeIpAnnotation(provided);
  const enforced: V1NodeAddress[] = [];
  const enforcedTypes = new Set<string>();
  for (const ip of nodeIps) {
    const matches = addresses.filter((a) => ipKey(a.address) === ip);
    if (matches.length === 0)
      throw new Error(`failed to get node address from cloud provider that matches ip: ${ip}`);
    for (const a of matches) {
      enforced.push({ type: a.type, address: a.address });
      enforcedTypes.add(a.type);
    }
  }
  for (const a of addresses)
    if (!enforcedTypes.has(a.type)) enforced.push({ type: a.type, address: a.address });
  return enforced;
}

/** component-helpers' ParseNodeIPAnnotation: one IP, or a dual-stack pair; anything else throws. */
function parseNodeIpAnnotation(text: string): string[] {
  const ips = text.split(',').map((part) => {
    const ip = ipKey(part);
    if (ip === undefined) throw new Error(`failed to parse node IP "${text}": could not parse "${part}"`);
    return ip;
  });
  const [first, second] = ips;
  if (ips.length > 2 || (second !== undefined && net.isIPv6(first ?? '') === net.isIPv6(second))) {
    throw new Error(
      `failed to parse node IP "${text}": must contain either a single IP or a dual-stack pair of IPs`,
    );
  }
  if (second !== undefined && ips.some((ip) => ip === '0.0.0.0' || ip === '::')) {
    throw new Error(`failed to parse node IP "${text}": dual-stack node IP cannot include '0.0.0.0' or '::'`);
  }
  return ips;
}

/**
 * An IP in one canonical text, so that equal addresses compare equal as Go's net.IP.Equal has
 * them: IPv4 octets with leading zeros (ParseIPSloppy), IPv6 in any spelling, and an
 * IPv4-mapped IPv6 address equal to its IPv4 address. Undefined when not an IP.
 */
export function ipKey(text: string): string | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) {
    const octets = text.split('.').map(Number);
    return octets.every((o) => o <= 255) ? octets.join('.') : undefined;
  }
  if (!net.isIPv6(text)) return undefined;
  const canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return canonical;
  const hi = parseInt(mapped[1] ?? '0', 16);
  const lo = parseInt(mapped[2] ?? '0', 16);
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** --concurrent-node-syncs workers (at least 1). */
function workerCount(ctx: ControllerContext): number {
  return Math.max(1, ctx.options.concurrentNodeSyncs);
}

/** Resolves true once every informer has synced, false if `signal` aborts first. */
export async function waitForSync(
  informers: readonly Informer<unknown>[],
  signal: AbortSignal,
): Promise<boolean> {
  await Promise.race([Promise.all(informers.map((i) => i.whenSynced())), untilAborted(signal)]);
  return !signal.aborted && informers.every((i) => i.hasSynced());
}

/** Resolves when `signal` aborts: a controller with nothing to do still runs until told to stop. */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

/** Waits `ms`; false when `signal` aborted instead. */
export async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
