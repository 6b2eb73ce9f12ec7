// What the balancer needs from a Service of type LoadBalancer, read and checked once per
// ensure/update: its TCP ports and their nodePorts, the address it asks for, the traffic
// policy, session affinity, PROXY protocol and source ranges. Bad annotations throw a
// LoadBalancerSpecError naming the annotation (the controller turns it into an Event).
import type { V1Service } from '@kubernetes/client-node';
import { canonicalIp, parseCidr, type IpRange } from './ip-address.js';
import { errorText } from '../../../../../common/log.js';

export const ANNOTATIONS = {
  /** The address wanted from the pool (as spec.loadBalancerIP, which is deprecated upstream). */
  loadBalancerIP: 'konnectivity.io/load-balancer-ip',
  /** "v1" or "v2": a PROXY protocol header towards the backends, so they see the client's address. */
  proxyProtocol: 'konnectivity.io/load-balancer-proxy-protocol',
  /** Upstream's annotation for source ranges, read when spec.loadBalancerSourceRanges is empty. */
  sourceRanges: 'service.beta.kubernetes.io/load-balancer-source-ranges',
} as const;

/** PortStatus.error values (cloud-provider specific, so domain-prefixed as the API asks). */
export const PORT_ERRORS = {
  unsupportedProtocol: 'konnectivity.io/UnsupportedProtocol',
  noNodePort: 'konnectivity.io/NoNodePort',
} as const;

/** kube-proxy's default ClientIP affinity timeout (3 h). */
export const DEFAULT_AFFINITY_TIMEOUT_S = 10_800;

export interface ServedPort {
  port: number;
  nodePort: number;
}

export interface RefusedPort {
  port: number;
  protocol: string;
  error: string;
  /** For the Event. */
  why: string;
}

export type ProxyProtocolVersion = 'v1' | 'v2';

export interface BalancerSpec {
  /** "namespace/name" */
  key: string;
  /** The address asked for (annotation, else spec.loadBalancerIP), canonical. */
  requestedIP: string | undefined;
  /** The addresses status.loadBalancer.ingress holds now (kept across restarts and failovers). */
  statusIPs: string[];
  /** TCP ports with a nodePort, in the Service's order. */
  ports: ServedPort[];
  refused: RefusedPort[];
  /** externalTrafficPolicy: Local (backends chosen by healthCheckNodePort). */
  local: boolean;
  healthCheckNodePort: number | undefined;
  /** sessionAffinity: ClientIP, with its timeout; undefined without affinity. */
  affinityTimeoutMs: number | undefined;
  proxyProtocol: ProxyProtocolVersion | undefined;
  /** undefined: every client is allowed. */
  sourceRanges: IpRange[] | undefined;
}

export class LoadBalancerSpecError extends Error {
  override readonly name = 'LoadBalancerSpecError';
}

export function serviceKey(service: V1Service): string {
  return `${service.metadata?.namespace ?? ''}/${service.metadata?.name ?? ''}`;
}

export function readBalancerSpec(service: V1Service): BalancerSpec {
  const spec = service.spec ?? {};
  const annotations = service.metadata?.annotations ?? {};
  const ports: ServedPort[] = [];
  const refused: RefusedPort[] = [];
  for (const p of spec.ports ?? []) {
    const protocol = p.protocol ?? 'TCP';
    if (protocol !== 'TCP') {
      refused.push({
        port: p.port,
        protocol,
        error: PORT_ERRORS.unsupportedProtocol,
        why: `the konnectivity load balancer carries TCP only; port ${p.port}/${protocol} is not served`,
      });
    } else if (!p.nodePort) {
      refused.push({
        port: p.port,
        protocol,
        error: PORT_ERRORS.noNodePort,
        why: `port ${p.port}/TCP has no nodePort (allocateLoadBalancerNodePorts: false?); backends are reached at their nodePort`,
      });
    } else {
      ports.push({ port: p.port, nodePort: p.nodePort });
    }
  }
  const local = spec.externalTrafficPolicy === 'Local';
  return {
    key: serviceKey(service),
    requestedIP: requestedIP(annotations[ANNOTATIONS.loadBalancerIP], spec.loadBalancerIP),
    statusIPs: (service.status?.loadBalancer?.ingress ?? [])
      .map((i) => (i.ip === undefined ? undefined : canonicalIp(i.ip)))
      .filter((ip): ip is string => ip !== undefined),
    ports,
    refused,
    local,
    healthCheckNodePort: local && spec.healthCheckNodePort ? spec.healthCheckNodePort : undefined,
    affinityTimeoutMs:
      spec.sessionAffinity === 'ClientIP'
        ? (spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_TIMEOUT_S) * 1000
        : undefined,
    proxyProtocol: proxyProtocol(annotations[ANNOTATIONS.proxyProtocol]),
    sourceRanges: sourceRanges(spec.loadBalancerSourceRanges, annotations[ANNOTATIONS.sourceRanges]),
  };
}

function requestedIP(annotation: string | undefined, field: string | undefined): string | undefined {
  const parse = (text: string, where: string): string => {
    const ip = canonicalIp(text.trim());
    if (ip === undefined) throw new LoadBalancerSpecError(`${where} "${text}" is not an IP address`);
    return ip;
  };
  const fromAnnotation = annotation
    ? parse(annotation, `annotation ${ANNOTATIONS.loadBalancerIP}`)
    : undefined;
  const fromField = field ? parse(field, 'spec.loadBalancerIP') : undefined;
  if (fromAnnotation !== undefined && fromField !== undefined && fromAnnotation !== fromField) {
    throw new LoadBalancerSpecError(
      `annotation ${ANNOTATIONS.loadBalancerIP} (${fromAnnotation}) and spec.loadBalancerIP (${fromField}) differ`,
    );
  }
  return fromAnnotation ?? fromField;
}

function proxyProtocol(value: string | undefined): ProxyProtocolVersion | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'v1' || value === 'v2') return value;
  throw new LoadBalancerSpecError(
    `annotation ${ANNOTATIONS.proxyProtocol}: "${value}" is not a PROXY protocol version (v1 or v2)`,
  );
}

function sourceRanges(field: string[] | undefined, annotation: string | undefined): IpRange[] | undefined {
  const [texts, where] =
    field && field.length > 0
      ? [field, 'spec.loadBalancerSourceRanges']
      : [
          (annotation ?? '').split(',').filter((t) => t.trim() !== ''),
          `annotation ${ANNOTATIONS.sourceRanges}`,
        ];
  if (texts.length === 0) return undefined;
  return texts.map((text) => {
    try {
      return parseCidr(text.trim(), false);
    } catch (err) {
      throw new LoadBalancerSpecError(`${where}: ${errorText(err)}`);
    }
  });
}
