// Identity binding flags: --agent-identity-binding, --agent-node-from-cert and
// --agents-allowed-any-identifier, parsed with messages that name what is wrong.

/**
 * enforce: claims that do not match the agent's node are not routed (and an agent whose node
 *          is unknown gets `default` routing only);
 * warn:    they are routed, logged and counted;
 * off:     nothing is checked (upstream);
 * auto:    the default: enforce for agents whose node is known, unknown nodes unchecked.
 */
export const BINDING_MODES = ['enforce', 'warn', 'off', 'auto'] as const;
export type BindingMode = (typeof BINDING_MODES)[number];

/** Where the node name of an agent that authenticated with its certificate only comes from. */
export const NODE_FROM_CERT = ['cn', 'san-dns', 'off'] as const;
export type NodeFromCert = (typeof NODE_FROM_CERT)[number];

export interface IdentityBindingConfig {
  mode: BindingMode;
  nodeFromCert: NodeFromCert;
  /** "<namespace>/<serviceaccount>" of agents that may claim any identifier. */
  anyIdentifierAccounts: readonly string[];
}

export const DEFAULT_IDENTITY_BINDING: IdentityBindingConfig = {
  mode: 'auto',
  nodeFromCert: 'off',
  anyIdentifierAccounts: [],
};

export class BindingOptionError extends Error {
  override readonly name = 'BindingOptionError';
}

export function parseBindingMode(text: string): BindingMode {
  const mode = BINDING_MODES.find((m) => m === text.trim());
  if (!mode)
    throw new BindingOptionError(
      `--agent-identity-binding must be enforce, warn or off (or auto, the default), not "${text}"`,
    );
  return mode;
}

export function parseNodeFromCert(text: string): NodeFromCert {
  const source = NODE_FROM_CERT.find((m) => m === text.trim());
  if (!source)
    throw new BindingOptionError(`--agent-node-from-cert must be cn, san-dns or off, not "${text}"`);
  return source;
}

// Namespaces are DNS-1123 labels; ServiceAccount names DNS-1123 subdomains.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** ["kube-system/gateway", ...] from the flag's comma-separated entries; repeats dropped. */
export function parseAccountList(entries: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of entries.flatMap((e) => e.split(','))) {
    const entry = raw.trim();
    if (entry === '') continue;
    const [ns, sa, ...rest] = entry.split('/');
    if (rest.length > 0 || ns === undefined || sa === undefined) {
      throw new BindingOptionError(
        `--agents-allowed-any-identifier: "${entry}" is not <namespace>/<serviceaccount>`,
      );
    }
    if (!DNS_LABEL.test(ns))
      throw new BindingOptionError(
        `--agents-allowed-any-identifier: "${ns}" in "${entry}" is not a namespace name`,
      );
    if (!DNS_SUBDOMAIN.test(sa))
      throw new BindingOptionError(
        `--agents-allowed-any-identifier: "${sa}" in "${entry}" is not a service account name`,
      );
    if (!out.includes(entry)) out.push(entry);
  }
  return out;
}

/** A Kubernetes object name (DNS-1123 subdomain), as node names are. */
export function isNodeName(name: string): boolean {
  return DNS_SUBDOMAIN.test(name);
}
