// The start-up line of identity binding: which mode runs, where agents' nodes can come from,
// and what that means for their claims, in words an operator can act on.
import type { IdentityBindingConfig } from './binding-options.js';

export interface BindingModeDescription {
  mode: IdentityBindingConfig['mode'];
  /** Where an agent's node can come from in this configuration. */
  nodeFrom: string[];
  anyIdentifier: readonly string[];
  why: string;
}

export function describeBindingMode(
  config: IdentityBindingConfig,
  tokenAuth: boolean,
): BindingModeDescription {
  const { mode, nodeFromCert, anyIdentifierAccounts } = config;
  const nodeFrom = [
    ...(tokenAuth ? ['TokenReview node-name (pod-bound tokens, Kubernetes 1.30+)'] : []),
    ...(nodeFromCert !== 'off' ? [`client certificate (${nodeFromCert})`] : []),
  ];
  const known = nodeFrom.length > 0;
  const noSource = `no agent's node can be known (${tokenAuth ? '' : 'agents authenticate without tokens and '}--agent-node-from-cert=off)`;
  let why: string;
  switch (mode) {
    case 'off':
      why = '--agent-identity-binding=off: agents may claim any identifier (upstream behaviour)';
      break;
    case 'warn':
      why = known
        ? "warn: claims that do not match the agent's node are routed, logged and counted"
        : `warn: ${noSource}, so every claim is routed, logged and counted as not matching`;
      break;
    case 'enforce':
      why = known
        ? "enforce: only claims that match the agent's node are routed; an agent whose node is unknown gets default routing only"
        : `enforce: ${noSource}: every agent gets default routing only, its destHost and default-route claims refused`;
      break;
    case 'auto':
      why = known
        ? 'default (enforce where the node is known): claims of agents whose node is known must match it; agents whose node is unknown keep their claims unchecked (set --agent-identity-binding=enforce to refuse them)'
        : `default (enforce where the node is known): ${noSource}, so claims are not checked, as upstream; set --agent-node-from-cert or token authentication to bind them`;
      break;
  }
  return { mode, nodeFrom, anyIdentifier: anyIdentifierAccounts, why };
}
