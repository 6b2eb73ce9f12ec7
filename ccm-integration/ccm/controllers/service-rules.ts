// The service controller's decisions, as k8s.io/cloud-provider controllers/service has them:
// which Services want a load balancer from us, which need cleanup, which changes need a sync,
// which Nodes may take load balancer traffic and which Node changes matter.
import { isDeepStrictEqual } from 'node:util';
import type { V1LoadBalancerStatus, V1Node, V1Service, V1ServicePort } from '@kubernetes/client-node';

export const LB_FINALIZER = 'service.kubernetes.io/load-balancer-cleanup';
export const LABEL_EXCLUDE_FROM_LB = 'node.kubernetes.io/exclude-from-external-load-balancers';
/** Set by the cluster autoscaler on a node it is about to delete. */
export const TAINT_TO_BE_DELETED = 'ToBeDeletedByClusterAutoscaler';

/**
 * type LoadBalancer, and a class this CCM serves: none, or the one named by
 * --load-balancer-class (upstream serves classless Services only).
 */
export function wantsLoadBalancer(service: V1Service, loadBalancerClass: string): boolean {
  const spec = service.spec;
  if (spec?.type !== 'LoadBalancer') return false;
  // ?? also covers a JSON null.
  const cls = spec.loadBalancerClass ?? '';
  return cls === '' || (loadBalancerClass !== '' && cls === loadBalancerClass);
}

export function hasFinalizer(service: V1Service): boolean {
  return (service.metadata?.finalizers ?? []).includes(LB_FINALIZER);
}

/** Our finalizer is on a Service being deleted, or on one that no longer wants our load balancer. */
export function needsCleanup(service: V1Service, loadBalancerClass: string): boolean {
  if (!hasFinalizer(service)) return false;
  return isDeleting(service) || !wantsLoadBalancer(service, loadBalancerClass);
}

export function isDeleting(obj: V1Service | V1Node): boolean {
  const stamp: unknown = obj.metadata?.deletionTimestamp;
  return stamp !== undefined && stamp !== null;
}

/** Upstream's needsUpdate: a change the load balancer must follow. */
export function needsUpdate(oldSvc: V1Service, newSvc: V1Service, loadBalancerClass: string): boolean {
  const oldWants = wantsLoadBalancer(oldSvc, loadBalancerClass);
  const newWants = wantsLoadBalancer(newSvc, loadBalancerClass);
  if (!oldWants && !newWants) return false;
  if (oldWants !== newWants) return true;
  const o = oldSvc.spec ?? {};
  const n = newSvc.spec ?? {};
  return (
    !isDeepStrictEqual(o.loadBalancerSourceRanges ?? [], n.loadBalancerSourceRanges ?? []) ||
    !portsEqual(o.ports ?? [], n.ports ?? []) ||
    o.sessionAffinity !== n.sessionAffinity ||
    !isDeepStrictEqual(plain(o.sessionAffinityConfig), plain(n.sessionAffinityConfig)) ||
    (o.loadBalancerIP ?? '') !== (n.loadBalancerIP ?? '') ||
    !isDeepStrictEqual(o.externalIPs ?? [], n.externalIPs ?? []) ||
    !isDeepStrictEqual(oldSvc.metadata?.annotations ?? {}, newSvc.metadata?.annotations ?? {}) ||
    oldSvc.metadata?.uid !== newSvc.metadata?.uid ||
    o.externalTrafficPolicy !== n.externalTrafficPolicy ||
    o.healthCheckNodePort !== n.healthCheckNodePort ||
    (o.ipFamilies ?? []).length !== (n.ipFamilies ?? []).length
  );
}

function portsEqual(a: readonly V1ServicePort[], b: readonly V1ServicePort[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i];
    return (
      y !== undefined &&
      (x.name ?? '') === (y.name ?? '') &&
      (x.protocol ?? 'TCP') === (y.protocol ?? 'TCP') &&
      x.port === y.port &&
      x.nodePort === y.nodePort &&
      isDeepStrictEqual(plain(x.targetPort), plain(y.targetPort)) &&
      x.appProtocol === y.appProtocol
    );
  });
}

/** Model objects compared as their JSON (classes and undefined fields aside). */
function plain(value: unknown): unknown {
  return value === undefined ? undefined : (JSON.parse(JSON.stringify(value)) as unknown);
}

/** Upstream's nodeIncludedPredicate: the exclusion label, unless it parses as false. */
export function nodeIncluded(node: V1Node): boolean {
  const value = node.metadata?.labels?.[LABEL_EXCLUDE_FROM_LB];
  if (value === undefined) return true;
  return parseGoBool(value) === false;
}

/** strconv.ParseBool; undefined when it does not parse (which upstream treats as excluded). */
function parseGoBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  return undefined;
}

export function nodeReady(node: V1Node): boolean {
  return (node.status?.conditions ?? []).find((c) => c.type === 'Ready')?.status === 'True';
}

/**
 * May take load balancer traffic: not being deleted, not excluded by label, not about to be
 * removed by the autoscaler, Ready and schedulable.
 */
export function nodeEligible(node: V1Node): boolean {
  return (
    !isDeleting(node) &&
    nodeIncluded(node) &&
    !(node.spec?.taints ?? []).some((t) => t.key === TAINT_TO_BE_DELETED) &&
    nodeReady(node) &&
    node.spec?.unschedulable !== true
  );
}

export function internalIPs(node: V1Node): string[] {
  return (node.status?.addresses ?? []).filter((a) => a.type === 'InternalIP').map((a) => a.address);
}

/** A Node update that can change some load balancer's backends. */
export function shouldSyncUpdatedNode(oldNode: V1Node, newNode: V1Node): boolean {
  return (
    nodeEligible(oldNode) !== nodeEligible(newNode) ||
    (oldNode.spec?.providerID ?? '') !== (newNode.spec?.providerID ?? '') ||
    !isDeepStrictEqual(internalIPs(oldNode), internalIPs(newNode))
  );
}

/** Upstream's nodesSufficientlyEqual, with the InternalIPs too: backends are dialled at them. */
export function nodesSufficientlyEqual(oldNodes: readonly V1Node[], newNodes: readonly V1Node[]): boolean {
  if (oldNodes.length !== newNodes.length) return false;
  const distill = (nodes: readonly V1Node[]) =>
    new Map(
      nodes.map((n) => [n.metadata?.name ?? '', `${n.spec?.providerID ?? ''}|${internalIPs(n).join(',')}`]),
    );
  return isDeepStrictEqual(distill(oldNodes), distill(newNodes));
}

/** The status as the API's JSON has it, for comparing and patching. */
export function plainStatus(status: V1LoadBalancerStatus | undefined): V1LoadBalancerStatus {
  const ingress = (status?.ingress ?? []).map((i) => {
    const out: Record<string, unknown> = {};
    if (i.ip !== undefined) out.ip = i.ip;
    if (i.hostname !== undefined) out.hostname = i.hostname;
    if (i.ipMode !== undefined) out.ipMode = i.ipMode;
    if (i.ports !== undefined) {
      out.ports = i.ports.map((p) => ({
        port: p.port,
        protocol: p.protocol,
        ...(p.error === undefined ? {} : { error: p.error }),
      }));
    }
    return out;
  });
  return ingress.length > 0 ? { ingress } : {};
}

export function loadBalancerStatusEqual(
  a: V1LoadBalancerStatus | undefined,
  b: V1LoadBalancerStatus | undefined,
): boolean {
  return isDeepStrictEqual(plainStatus(a), plainStatus(b));
}
