// The --cloud-config of the `konnectivity` provider (YAML). Strict, as a kube component's
// config file: an unknown key is refused, and every error is a CloudConfigError that names
// the key and the file.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { parseGoDuration } from '../../../../common/flags/go-duration.js';
import { errorText } from '../../../../common/log.js';
import type { EgressSelectionName } from '../../../egress-selector/egress-dialer-types.js';
import { CloudConfigError } from '../cloud-provider.js';

/** Kept as written (types checked) for the load-balancer side of the provider. */
export interface LoadBalancerCloudConfig {
  addresses?: string[];
  healthCheckInterval?: string;
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
const LOAD_BALANCER_KEYS = ['addresses', 'healthCheckInterval'] as const;
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
  const out: LoadBalancerCloudConfig = {};
  if ('addresses' in value) {
    const addresses = value.addresses;
    if (!Array.isArray(addresses)) {
      return fail(
        'loadBalancer.addresses',
        `must be a list of addresses, ranges or CIDRs, got ${shown(addresses)}`,
      );
    }
    addresses.forEach((a: unknown, i) => {
      if (typeof a !== 'string' || a === '')
        fail(`loadBalancer.addresses[${i}]`, `must be a non-empty string, got ${shown(a)}`);
    });
    out.addresses = addresses as string[];
  }
  if ('healthCheckInterval' in value) {
    const text = value.healthCheckInterval;
    duration(value, 'healthCheckInterval', '', (key, reason) => fail(`loadBalancer.${key}`, reason));
    out.healthCheckInterval = typeof text === 'string' ? text : '0s';
  }
  return out;
}

function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null (an empty value)';
  return Array.isArray(value)
    ? `a list (${JSON.stringify(value)})`
    : `${typeof value} ${JSON.stringify(value)}`;
}
