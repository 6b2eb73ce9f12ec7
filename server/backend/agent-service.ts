// /AgentService/Connect: an agent opens one long-lived stream; we answer with serverID and
// serverCount headers and register it as a backend for dials.
import { Extension, MetadataKey, parseExtensions } from '../../proto/metadata.js';
import { GrpcStatus } from '../../proto/grpc-status.js';
import type { Logger } from '../../common/log.js';
import type { ServerMetrics } from '../metrics.js';
import type { TunnelBroker } from '../tunnel/broker.js';
import { Backend, type AgentStream } from './backend.js';
import { parseConnectionWindow } from '../../proto/flow-control.js';
import type { BackendManager } from './backend-manager.js';
import {
  REVIEW_ABANDONED,
  type TokenAuthenticator,
  type TokenIdentity,
} from '../../common/kube/token-review.js';
import type { IdentityBinding } from '../identity/identity-binding.js';
import { peerCertificateOf } from '../identity/cert-identity.js';
import { parseAgentIdentifiers } from '../../proto/agent-identifiers.js';
import { AgentChurnLog } from './agent-churn-log.js';

/** The extensions this server implements, offered to agents that ask. */
const SUPPORTED = new Set<string>([Extension.halfClose, Extension.flowControl]);

export interface AgentServiceOptions {
  serverID: string;
  serverCount: number;
  /** flow-control: the window we grant the agent per connection. */
  connectionWindow: number;
}

export class AgentService {
  /** Set when agents must present a ServiceAccount token. */
  authenticator: TokenAuthenticator | undefined;
  /** Binds each agent's identifier claims to its authenticated node (server/identity/). */
  binding: IdentityBinding | undefined;
  /** Per-agent connect and disconnect lines at debug, a summary at info. */
  readonly churn: AgentChurnLog;

  constructor(
    private readonly broker: TunnelBroker,
    private readonly backends: BackendManager,
    private readonly metrics: ServerMetrics,
    private readonly log: Logger,
    private readonly options: AgentServiceOptions,
  ) {
    this.churn = new AgentChurnLog(log, () => backends.size);
  }

  readonly handle = (stream: AgentStream): void => {
    const agentID = stream.header(MetadataKey.agentID) ?? '';
    const peer = stream.peer;
    if (agentID === '') {
      this.log.warn({ peer }, 'agent stream refused: no agentID metadata');
      stream.fail(GrpcStatus.INVALID_ARGUMENT, 'agentID metadata is required');
      return;
    }
    const auth = this.authenticator;
    if (!auth) {
      this.admit(stream, agentID, peer);
      return;
    }
    // Whatever the agent sends meanwhile waits in the stream, for admit() to read.
    stream.pause();
    const wanted = () => !stream.isClosed;
    void auth.authenticate(stream.header(MetadataKey.authorization), wanted).then((result) => {
      if (result.ok) {
        this.log.debug({ agentID, peer, user: result.user, node: result.node?.name }, 'agent token accepted');
        this.admit(stream, agentID, peer, result);
        return;
      }
      if (result.reason === REVIEW_ABANDONED) return; // it hung up while queued: nothing to answer
      this.metrics.agentAuthFailures.inc();
      this.log.warn({ agentID, peer, reason: result.reason }, 'agent refused: authentication failed');
      if (stream.isClosed) return;
      stream.fail(GrpcStatus.UNAUTHENTICATED, `agent authentication failed: ${result.reason}`);
    });
  };

  private admit(stream: AgentStream, agentID: string, peer: string, token?: TokenIdentity): void {
    if (stream.isClosed) return;
    const identifierText = stream.header(MetadataKey.agentIdentifiers) ?? '';
    const parsed = parseAgentIdentifiers(identifierText);
    if (parsed.invalid.length > 0 || parsed.unknown.length > 0) {
      this.log.warn(
        { agentID, invalid: parsed.invalid, unknown: parsed.unknown },
        'agent identifiers partly ignored',
      );
    }
    const identifiers = parsed.identifiers;
    const requested = parseExtensions(stream.header(MetadataKey.extensions));
    const accepted = new Set([...requested].filter((e) => SUPPORTED.has(e)));

    const headers: Record<string, string> = {
      [MetadataKey.serverID]: this.options.serverID,
      [MetadataKey.serverCount]: String(this.options.serverCount),
    };
    if (requested.size > 0) headers[MetadataKey.extensions] = [...accepted].join(',');
    if (accepted.has(Extension.flowControl)) {
      headers[MetadataKey.connectionWindow] = String(this.options.connectionWindow);
    }
    const windows = {
      local: this.options.connectionWindow,
      peer: parseConnectionWindow(stream.header(MetadataKey.connectionWindow)),
    };
    stream.sendHeaders(headers);

    const log = this.log.child({ agentID });
    const backend = new Backend(agentID, identifiers, peer, accepted, windows, stream, log, this.metrics);
    this.metrics.grpcConnections.labels('Connect').inc();
    this.binding?.bind(backend, { token, certificate: () => peerCertificateOf(stream) });
    this.backends.add(backend);
    this.churn.agentJoined(log, {
      peer,
      transport: stream.transport,
      identifiers: identifierText,
      extensions: [...accepted],
    });

    let gone = false;
    const leave = (reason: string) => {
      if (gone) return;
      gone = true;
      this.backends.remove(backend);
      this.binding?.release(backend);
      this.metrics.grpcConnections.labels('Connect').dec();
      this.broker.backendGone(backend, reason);
      this.churn.agentLeft(log, reason, { connections: backend.connections.size });
      if (!stream.writableEnded) stream.end();
    };
    stream.onPacket = (p) => {
      this.broker.handleAgentPacket(backend, p);
    };
    stream.onEnd = () => {
      leave('agent closed the stream');
    };
    stream.onClose = (reason, failed) => {
      if (failed) this.metrics.streamError('from_agent', 'Unknown', undefined);
      leave(reason);
    };
    stream.resume();
  }
}
