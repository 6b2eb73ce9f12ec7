// Identity binding: an agent may only claim its own node. At connect the agent's node comes
// from its credentials (the TokenReview's node-name, or its client certificate with
// --agent-node-from-cert); its claims are checked against that Node (claim-check.ts) and the
// BackendManager routes by the claims that pass. When a Node changes, the agents on it are
// checked again: a claim that stops matching is withdrawn from routing, one that starts
// matching is routed. Open connections are never touched.
import type tls from 'node:tls';
import type { Logger } from '../../common/log.js';
import type { TokenIdentity } from '../../common/kube/token-review.js';
import type { Backend } from '../backend/backend.js';
import type { BackendManager } from '../backend/backend-manager.js';
import type { ServerMetrics } from '../metrics.js';
import type { IdentityBindingConfig } from './binding-options.js';
import { describeBindingMode } from './binding-mode-description.js';
import { nodeFromCertificate } from './cert-identity.js';
import {
  checkClaims,
  claimsOf,
  claimText,
  identifiersOf,
  type AgentNode,
  type Claim,
  type Verdict,
} from './claim-check.js';
import type { NodeSource, NodeView } from './node-watch.js';

export interface AgentCredentials {
  /** The accepted token, when agents authenticate with ServiceAccount tokens. */
  token?: TokenIdentity | undefined;
  /** The agent's verified client certificate (read only with --agent-node-from-cert). */
  certificate: () => tls.PeerCertificate | undefined;
}

/**
 * How one agent's claims are treated now: enforce (only matching claims routed), warn (all
 * routed, mismatches logged and counted), off (--agent-identity-binding=off), any-identifier
 * (a listed account), unchecked (the default mode, node unknown or Nodes unreadable).
 */
export type AgentBindingMode = 'enforce' | 'warn' | 'off' | 'any-identifier' | 'unchecked';

export interface ClaimNote {
  claim: string;
  reason: string;
}

/** What /agents shows of an agent's binding. */
export interface AgentBindingView {
  node: string | null;
  nodeSource: 'token' | 'cert' | null;
  serviceAccount: string | null;
  binding: AgentBindingMode;
  /** Why the node is unknown; absent when it is known. */
  nodeUnknown?: string;
  /** Under warn: the claims that would be refused (they are routed). */
  refusedClaims: ClaimNote[];
  pendingClaims: ClaimNote[];
}

interface BoundAgent {
  readonly backend: Backend;
  readonly claims: readonly Claim[];
  readonly node: AgentNode | undefined;
  readonly unknownWhy: string;
  readonly serviceAccount: string | undefined;
  readonly anyIdentifier: boolean;
  mode: AgentBindingMode | undefined;
  verdicts: Verdict[];
  /** The summary line is logged once no claim waits for the Node cache. */
  announced: boolean;
}

export const BindingLog = {
  startup: 'agent identity binding',
  bound: 'agent identity bound',
  refused: "agent claims refused: they do not match the agent's node",
  unknownRefused: "agent's node is unknown: destHost and default-route claims refused, default routing only",
  warned: "agent claims do not match the agent's node (routed anyway: --agent-identity-binding=warn)",
  unchecked: 'agent claims not checked (default mode): no Node to check them against',
  pending: "agent claims wait for the agent's Node in the Node cache",
  withdrawn: "agent claim withdrawn from routing: it no longer matches the agent's node",
  claimRefused: "agent claim refused: it does not match the agent's node",
  claimWarned: "agent claim does not match the agent's node (routed anyway: --agent-identity-binding=warn)",
  claimRouted: "agent claim routed: it matches the agent's node",
  modeChanged: 'agent identity binding changed',
} as const;

export class IdentityBinding {
  private readonly agents = new Map<Backend, BoundAgent>();
  private readonly byNode = new Map<string, Set<BoundAgent>>();

  constructor(
    private readonly config: IdentityBindingConfig,
    /** Agents authenticate with tokens (so a TokenReview may name their node). */
    private readonly tokenAuth: boolean,
    /** The Node cache; undefined when no agent's node can be known or the mode is off. */
    private readonly nodes: NodeSource | undefined,
    private readonly backends: BackendManager,
    private readonly metrics: ServerMetrics,
    private readonly log: Logger,
  ) {
    nodes?.onChange((name) => {
      this.nodeChanged(name);
    });
  }

  /** Whether this configuration can ever need Nodes (and so a Kubernetes client). */
  static needsNodes(config: IdentityBindingConfig, tokenAuth: boolean): boolean {
    return config.mode !== 'off' && (tokenAuth || config.nodeFromCert !== 'off');
  }

  /** The start-up log line: which mode runs and why. */
  logStartup(): void {
    this.log.info(describeBindingMode(this.config, this.tokenAuth), BindingLog.startup);
  }

  /** Checks a new agent's claims and sets what it is routed by; before BackendManager.add(). */
  bind(backend: Backend, credentials: AgentCredentials): void {
    const identity = this.identify(backend, credentials);
    const agent: BoundAgent = {
      backend,
      claims: claimsOf(backend.declared),
      ...identity,
      mode: undefined,
      verdicts: [],
      announced: false,
    };
    this.agents.set(backend, agent);
    if (agent.node) {
      let set = this.byNode.get(agent.node.name);
      if (!set) this.byNode.set(agent.node.name, (set = new Set()));
      set.add(agent);
      if (this.config.mode !== 'off' && !agent.anyIdentifier && agent.claims.length > 0) this.nodes?.want();
    }
    this.evaluate(agent);
  }

  release(backend: Backend): void {
    const agent = this.agents.get(backend);
    if (!agent) return;
    this.agents.delete(backend);
    if (agent.node) {
      const set = this.byNode.get(agent.node.name);
      set?.delete(agent);
      if (set?.size === 0) this.byNode.delete(agent.node.name);
    }
  }

  describe(backend: Backend): AgentBindingView | undefined {
    const agent = this.agents.get(backend);
    if (!agent) return undefined;
    return {
      node: agent.node?.name ?? null,
      nodeSource: agent.node?.source ?? null,
      serviceAccount: agent.serviceAccount ?? null,
      binding: agent.mode ?? 'off',
      ...(agent.node ? {} : { nodeUnknown: agent.unknownWhy }),
      refusedClaims: this.notes(agent, 'refused'),
      pendingClaims: this.notes(agent, 'pending'),
    };
  }

  stop(): void {
    this.nodes?.stop();
  }

  private identify(
    backend: Backend,
    credentials: AgentCredentials,
  ): Pick<BoundAgent, 'node' | 'unknownWhy' | 'serviceAccount' | 'anyIdentifier'> {
    const token = credentials.token;
    const serviceAccount = token?.serviceAccount;
    const anyIdentifier =
      serviceAccount !== undefined && this.config.anyIdentifierAccounts.includes(serviceAccount);
    const source = this.config.nodeFromCert;
    const fromCert = source === 'off' ? undefined : nodeFromCertificate(credentials.certificate(), source);
    if (token?.node) {
      if (fromCert?.ok && fromCert.name !== token.node.name) {
        backend.log.warn(
          { tokenNode: token.node.name, certificateNode: fromCert.name },
          "the agent's certificate names another node than its token: the token's node is used",
        );
      }
      const node: AgentNode = { name: token.node.name, source: 'token' };
      if (token.node.uid !== undefined) node.uid = token.node.uid;
      return { node, unknownWhy: '', serviceAccount, anyIdentifier };
    }
    if (fromCert?.ok) {
      return { node: { name: fromCert.name, source: 'cert' }, unknownWhy: '', serviceAccount, anyIdentifier };
    }
    const why = [
      token
        ? 'its token carries no node name (pod-bound tokens of Kubernetes 1.30+ do)'
        : this.tokenAuth
          ? 'no token'
          : 'agents authenticate without tokens',
      fromCert ? fromCert.reason : '--agent-node-from-cert=off',
    ].join('; ');
    return { node: undefined, unknownWhy: why, serviceAccount, anyIdentifier };
  }

  private viewOf(agent: BoundAgent): NodeView | undefined {
    if (!agent.node) return undefined;
    return (
      this.nodes?.view(agent.node.name) ?? {
        state: 'unavailable',
        reason: 'the server has no Kubernetes client to read Nodes',
      }
    );
  }

  private modeOf(agent: BoundAgent, view: NodeView | undefined): AgentBindingMode {
    switch (this.config.mode) {
      case 'off':
        return 'off';
      case 'warn':
      case 'enforce':
        return agent.anyIdentifier ? 'any-identifier' : this.config.mode;
      case 'auto':
        if (agent.anyIdentifier) return 'any-identifier';
        return !agent.node || view?.state === 'unavailable' ? 'unchecked' : 'enforce';
    }
  }

  private nodeChanged(name: string | undefined): void {
    const affected =
      name === undefined
        ? [...this.agents.values()].filter((a) => a.node !== undefined)
        : [...(this.byNode.get(name) ?? [])];
    for (const agent of affected) this.evaluate(agent);
  }

  /** Checks the agent's claims now, routes by those that pass, and logs and counts changes. */
  private evaluate(agent: BoundAgent): void {
    const view = this.viewOf(agent);
    const mode = this.modeOf(agent, view);
    const verdicts: Verdict[] =
      mode === 'enforce' || mode === 'warn'
        ? checkClaims(agent.claims, agent.node, view, agent.unknownWhy)
        : agent.claims.map((claim) => ({ claim, status: 'allowed' }));
    const before = agent.verdicts;
    const modeBefore = agent.mode;
    agent.verdicts = verdicts;
    agent.mode = mode;

    const routed =
      mode === 'enforce' ? verdicts.filter((v) => v.status === 'allowed').map((v) => v.claim) : agent.claims;
    this.backends.reroute(agent.backend, identifiersOf(routed));

    verdicts.forEach((v, i) => {
      if (v.status === 'refused' && before[i]?.status !== 'refused')
        this.metrics.identifierClaimsRefused.labels(v.claim.type).inc();
    });
    const pending = this.notes(agent, 'pending');
    if (agent.announced) {
      if (modeBefore !== undefined) this.logChanges(agent, modeBefore, before);
    } else if (pending.length === 0) {
      agent.announced = true;
      this.logSummary(agent, view);
    } else if (modeBefore === undefined) {
      agent.backend.log.debug({ node: agent.node?.name, pending }, BindingLog.pending);
    }
  }

  /** The agent's binding in one line, once it is settled (at connect, or when its Node is in). */
  private logSummary(agent: BoundAgent, view: NodeView | undefined): void {
    const log = agent.backend.log;
    const refused = this.notes(agent, 'refused');
    const fields = {
      binding: agent.mode,
      node: agent.node?.name,
      nodeSource: agent.node?.source,
      serviceAccount: agent.serviceAccount,
      ...(refused.length > 0 ? { refused } : {}),
    };
    if (agent.claims.length === 0) {
      log.debug(fields, BindingLog.bound);
    } else if (agent.mode === 'enforce' && !agent.node) {
      log.warn({ ...fields, why: agent.unknownWhy }, BindingLog.unknownRefused);
    } else if (agent.mode === 'enforce' && refused.length > 0) {
      log.warn(fields, BindingLog.refused);
    } else if (agent.mode === 'warn' && refused.length > 0) {
      log.warn(fields, BindingLog.warned);
    } else if (agent.mode === 'unchecked') {
      // The usual case of a whole cluster (the startup line says so once): per agent at debug.
      const why = agent.node ? (view?.state === 'unavailable' ? view.reason : '') : agent.unknownWhy;
      log.debug({ ...fields, why }, BindingLog.unchecked);
    } else {
      log.debug(fields, BindingLog.bound);
    }
  }

  private logChanges(agent: BoundAgent, modeBefore: AgentBindingMode, before: readonly Verdict[]): void {
    const log = agent.backend.log;
    if (agent.mode !== modeBefore)
      log.info({ from: modeBefore, to: agent.mode, node: agent.node?.name }, BindingLog.modeChanged);
    agent.verdicts.forEach((v, i) => {
      const was = before[i]?.status;
      if (v.status === was) return;
      const claim = claimText(v.claim);
      if (v.status === 'refused') {
        const msg =
          agent.mode === 'warn'
            ? BindingLog.claimWarned
            : was === 'allowed'
              ? BindingLog.withdrawn
              : BindingLog.claimRefused;
        log.warn({ claim, reason: v.reason, node: agent.node?.name }, msg);
      } else if (v.status === 'allowed' && agent.mode === 'enforce') {
        log.info({ claim, node: agent.node?.name }, BindingLog.claimRouted);
      }
    });
  }

  private notes(agent: BoundAgent, status: 'refused' | 'pending'): ClaimNote[] {
    return agent.verdicts.flatMap((v) =>
      v.status === status ? [{ claim: claimText(v.claim), reason: v.reason }] : [],
    );
  }
}
