// The --cloud-config of the `konnectivity` provider (YAML). Strict, as a kube component's
// config file: an unknown key is refused, and every error is a CloudConfigError that names
// the key and the file.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { parseGoDuration } from '../../../../common/flags/go-duration.js';
import { errorText } from '../../../../common/log.js';
import type { EgressSelectionName } from '../../../egress-selector/egress-dialer-types.js';
import { CloudConfigError } from '../cloud-provider.js';
import { parsePool, PoolEntryError } from './load-balancer/address-pool.js';
import type { IpRange } from './load-balancer/ip-address.js';

/** The `loadBalancer` section: the provider serves Services of type LoadBalancer (see load-balancer/). */
export interface LoadBalancerCloudConfig {
  /** loadBalancer.addresses as written: IPs, ranges a-b and CIDRs, tried in this order. */
  addresses: string[];
  /** The same, parsed (non-overlapping). */
  pool: IpRange[];
  /** How often every backend is checked through the tunnel. */
  healthCheckIntervalMs: number;
  /** Bound on one check; at most the interval. */
  healthCheckTimeoutMs: number;
  /** How long a closed listener's open connections may go on before they are cut. */
  drainTimeoutMs: number;
}

export interface KonnectivityCloudConfig {
  /** Path of an EgressSelectorConfiguration; '' when not set (the CCM's own egress is used). */
  egressSelectorConfigFile: string;
  egressSelection: EgressSelectionName;
  /** The proxy-servers' admin base URLs, without a trailing slash. */
  servers: string[];
  shutdownGraceMs: number;
  /** 0: instances are never reported gone. */
  nodeDeletionGraceMs: number;
  agentCacheTtlMs: number;
  kubeletPort: number;
  loadBalancer: LoadBalancerCloudConfig | undefined;
}

export const CONFIG_DEFAULTS = {
  egressSelection: 'cluster',
  shutdownGrace: '40s',
  nodeDeletionGrace: '0s',
  agentCacheTTL: '2s',
  kubeletPort: 10250,
} as const;

export const LOAD_BALANCER_DEFAULTS = {
  healthCheckInterval: '5s',
  /** Default healthCheckTimeout: half the interval, at most this. */
  healthCheckTimeoutCap: '2s',
  drainTimeout: '10s',
} as const;
const MIN_HEALTH_CHECK_INTERVAL_MS = 100;

const TOP_LEVEL_KEYS = [
  'egressSelectorConfigFile',
  'egressSelection',
  'servers',
  'shutdownGrace',
  'nodeDeletionGrace',
  'agentCacheTTL',
  'kubeletPort',
  'loadBalancer',
] as const;
const LOAD_BALANCER_KEYS = [
  'addresses',
  'healthCheckInterval',
  'healthCheckTimeout',
  'drainTimeout',
] as const;
const SELECTIONS: readonly EgressSelectionName[] = ['cluster', 'controlplane', 'etcd'];

export function loadKonnectivityCloudConfig(path: string): KonnectivityCloudConfig {
  if (!path) {
    throw new CloudConfigError(
      "the konnectivity cloud provider needs --cloud-config: a YAML file with at least `servers` (the proxy-servers' admin URLs)",
    );
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CloudConfigError(`--cloud-config ${path}: cannot read the file: ${errorText(err)}`, {
      cause: err,
    });
  }
  return parseKonnectivityCloudConfig(text, path);
}

export function parseKonnectivityCloudConfig(text: string, source: string): KonnectivityCloudConfig {
  const fail = (key: string, reason: string): never => {
    throw new CloudConfigError(`--cloud-config ${source}: ${key ? `${key}: ` : ''}${reason}`);
  };
  let doc: unknown;
  try {
    doc = parse(text, { uniqueKeys: true });
  } catch (err) {
    return fail('', `not valid YAML: ${errorText(err)}`);
  }
  const root = doc ?? {};
  if (!isMap(root)) return fail('', 'must be a YAML mapping of keys to values');
  refuseUnknownKeys(root, TOP_LEVEL_KEYS, '', fail);

  const egressSelectorConfigFile = optionalString(root, 'egressSelectorConfigFile', fail) ?? '';
  const selectionText = optionalString(root, 'egressSelection', fail);
  if (selectionText !== undefined && !egressSelectorConfigFile) {
    fail(
      'egressSelection',
      'is set but egressSelectorConfigFile is not (the selection names one of that file)',
    );
  }
  const egressSelection = selectionText ?? CONFIG_DEFAULTS.egressSelection;
  if (!isSelection(egressSelection)) {
    return fail('egressSelection', `"${egressSelection}" is not one of ${SELECTIONS.join(', ')}`);
  }

  return {
    egressSelectorConfigFile,
    egressSelection,
    servers: serverUrls(root.servers, fail),
    shutdownGraceMs: duration(root, 'shutdownGrace', CONFIG_DEFAULTS.shutdownGrace, fail),
    nodeDeletionGraceMs: duration(root, 'nodeDeletionGrace', CONFIG_DEFAULTS.nodeDeletionGrace, fail),
    agentCacheTtlMs: duration(root, 'agentCacheTTL', CONFIG_DEFAULTS.agentCacheTTL, fail),
    kubeletPort: port(root.kubeletPort, fail),
    loadBalancer: loadBalancer(root.loadBalancer, fail),
  };
}

type Fail = (key: string, reason: string) => never;

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isSelection(value: string): value is EgressSelectionName {
  return (SELECTIONS as readonly string[]).includes(value);
}

function refuseUnknownKeys(
  map: Record<string, unknown>,
  known: readonly string[],
  prefix: string,
  fail: Fail,
): void {
  for (const key of Object.keys(map)) {
    if (!known.includes(key)) fail(`${prefix}${key}`, `unknown key (known keys: ${known.join(', ')})`);
  }
}

function optionalString(map: Record<string, unknown>, key: string, fail: Fail): string | undefined {
  if (!(key in map)) return undefined;
  const value = map[key];
  if (typeof value !== 'string' || value === '')
    return fail(key, `must be a non-empty string, got ${shown(value)}`);
  return value;
}

function serverUrls(value: unknown, fail: Fail): string[] {
  if (value === undefined) {
    return fail(
      'servers',
      'is required: the admin URLs of the proxy-servers, e.g. ["http://127.0.0.1:8095"]',
    );
  }
  if (!Array.isArray(value) || value.length === 0) {
    return fail('servers', `must be a non-empty list of URLs, got ${shown(value)}`);
  }
  const out: string[] = [];
  value.forEach((item: unknown, i) => {
    const key = `servers[${i}]`;
    if (typeof item !== 'string') return fail(key, `must be a URL string, got ${shown(item)}`);
    let url: URL;
    try {
      url = new URL(item);
    } catch {
      return fail(key, `"${item}" is not a URL (e.g. http://127.0.0.1:8095)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      fail(key, `"${item}" must be an http:// or https:// URL`);
    }
    if (url.search || url.hash) fail(key, `"${item}" must not have a query or a fragment`);
    const base = url.href.replace(/\/+$/, '');
    if (out.includes(base)) fail(key, `"${item}" is listed twice`);
    out.push(base);
  });
  return out;
}

function duration(map: Record<string, unknown>, key: string, fallback: string, fail: Fail): number {
  const value = key in map ? map[key] : fallback;
  // YAML reads a bare 0 as a number: it is unambiguous, any other number lacks its unit.
  if (value === 0) return 0;
  if (typeof value !== 'string') {
    return fail(key, `must be a Go duration string such as 40s, 5m or 1h30m, got ${shown(value)}`);
  }
  let ms: number;
  try {
    ms = parseGoDuration(value);
  } catch {
    return fail(key, `"${value}" is not a Go duration (examples: 500ms, 40s, 5m, 1h30m)`);
  }
  if (ms < 0) fail(key, `"${value}" must not be negative`);
  return ms;
}

function port(value: unknown, fail: Fail): number {
  if (value === undefined) return CONFIG_DEFAULTS.kubeletPort;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    return fail('kubeletPort', `must be a port number from 1 to 65535, got ${shown(value)}`);
  }
  return value;
}

function loadBalancer(value: unknown, fail: Fail): LoadBalancerCloudConfig | undefined {
  if (value === undefined) return undefined;
  if (!isMap(value)) return fail('loadBalancer', `must be a mapping, got ${shown(value)}`);
  refuseUnknownKeys(value, LOAD_BALANCER_KEYS, 'loadBalancer.', fail);
  const lbFail: Fail = (key, reason) => fail(`loadBalancer.${key}`, reason);
  const interval = duration(value, 'healthCheckInterval', LOAD_BALANCER_DEFAULTS.healthCheckInterval, lbFail);
  if (interval < MIN_HEALTH_CHECK_INTERVAL_MS) {
    lbFail('healthCheckInterval', `must be at least ${MIN_HEALTH_CHECK_INTERVAL_MS}ms`);
  }
  const cap = parseGoDuration(LOAD_BALANCER_DEFAULTS.healthCheckTimeoutCap);
  const timeout =
    'healthCheckTimeout' in value
      ? duration(value, 'healthCheckTimeout', '', lbFail)
      : Math.min(cap, Math.floor(interval / 2));
  if (timeout <= 0 || timeout > interval) {
    lbFail('healthCheckTimeout', `must be more than 0 and at most healthCheckInterval (${interval}ms)`);
  }
  const drainTimeoutMs = duration(value, 'drainTimeout', LOAD_BALANCER_DEFAULTS.drainTimeout, lbFail);
  const { addresses, pool } = addressPool(value.addresses, lbFail);
  return {
    addresses,
    pool,
    healthCheckIntervalMs: interval,
    healthCheckTimeoutMs: timeout,
    drainTimeoutMs,
  };
}

/** loadBalancer.addresses: required, each an IP, a range a-b or a CIDR, none overlapping another. */
function addressPool(value: unknown, lbFail: Fail): { addresses: string[]; pool: IpRange[] } {
  if (value === undefined) {
    return lbFail(
      'addresses',
      'is required: the addresses load balancers get, as IPs, ranges a-b or CIDRs (e.g. ["192.0.2.10-192.0.2.20"])',
    );
  }
  if (!Array.isArray(value)) {
    return lbFail('addresses', `must be a list of addresses, ranges or CIDRs, got ${shown(value)}`);
  }
  if (value.length === 0) return lbFail('addresses', 'must not be empty');
  const addresses = value.map((a: unknown, i): string =>
    typeof a === 'string' && a.trim() !== ''
      ? a
      : lbFail(`addresses[${i}]`, `must be a non-empty string, got ${shown(a)}`),
  );
  try {
    return { addresses, pool: parsePool(addresses) };
  } catch (err) {
    if (err instanceof PoolEntryError) return lbFail(`addresses[${err.index}]`, err.reason);
    throw err;
  }
}

function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null (an empty value)';
  return Array.isArray(value)
    ? `a list (${JSON.stringify(value)})`
    : `${typeof value} ${JSON.stringify(value)}`;
}
