// /AgentService/Connect: an agent opens one long-lived stream; we answer with serverID and
// serverCount headers and register it as a backend for dials.
import { Metadata, status } from '@grpc/grpc-js';
import type { Packet } from '../../proto/packet.js';
import { Extension, MetadataKey, metadataValue, parseExtensions } from '../../proto/metadata.js';
import type { Logger } from '../../common/log.js';
import type { ServerMetrics } from '../metrics.js';
import type { TunnelBroker } from '../tunnel/broker.js';
import { Backend, type AgentStream } from './backend.js';
import { widenReceiveWindows } from '../http2-windows.js';
import { parseConnectionWindow } from '../../proto/flow-control.js';
import type { BackendManager } from './backend-manager.js';
import type { TokenAuthenticator } from '../../common/kube/token-review.js';
import { parseAgentIdentifiers } from '../../proto/agent-identifiers.js';

/** The extensions this server implements, offered to agents that ask. */
const SUPPORTED = new Set<string>([Extension.halfClose, Extension.flowControl]);

export interface AgentServiceOptions {
  serverID: string;
  serverCount: number;
  windowBytes: number;
  /** flow-control: the window we grant the agent per connection. */
  connectionWindow: number;
}

export class AgentService {
  /** Set when agents must present a ServiceAccount token. */
  authenticator: TokenAuthenticator | undefined;

  constructor(
    private readonly broker: TunnelBroker,
    private readonly backends: BackendManager,
    private readonly metrics: ServerMetrics,
    private readonly log: Logger,
    private readonly options: AgentServiceOptions,
  ) {}

  readonly handle = (stream: AgentStream): void => {
    const agentID = metadataValue(stream.metadata, MetadataKey.agentID) ?? '';
    const peer = stream.getPeer();
    if (agentID === '') {
      this.log.warn({ peer }, 'agent stream refused: no agentID metadata');
      stream.emit('error', { code: status.INVALID_ARGUMENT, details: 'agentID metadata is required' });
      return;
    }
    const auth = this.authenticator;
    if (!auth) {
      this.admit(stream, agentID, peer);
      return;
    }
    void auth.authenticate(metadataValue(stream.metadata, MetadataKey.authorization)).then((result) => {
      if (result.ok) {
        this.log.debug({ agentID, peer, user: result.user }, 'agent token accepted');
        this.admit(stream, agentID, peer);
        return;
      }
      this.metrics.agentAuthFailures.inc();
      this.log.warn({ agentID, peer, reason: result.reason }, 'agent refused: authentication failed');
      if (stream.cancelled) return;
      stream.emit('error', {
        code: status.UNAUTHENTICATED,
        details: `agent authentication failed: ${result.reason}`,
      });
    });
  };

  private admit(stream: AgentStream, agentID: string, peer: string): void {
    if (stream.cancelled) return;
    const identifierText = metadataValue(stream.metadata, MetadataKey.agentIdentifiers) ?? '';
    const parsed = parseAgentIdentifiers(identifierText);
    if (parsed.invalid.length > 0 || parsed.unknown.length > 0) {
      this.log.warn(
        { agentID, invalid: parsed.invalid, unknown: parsed.unknown },
        'agent identifiers partly ignored',
      );
    }
    const identifiers = parsed.identifiers;
    if (!widenReceiveWindows(stream, this.options.windowBytes)) {
      this.log.warn(
        'cannot reach the HTTP/2 session of the agent stream: its receive window stays at 64 KiB',
      );
    }
    const requested = parseExtensions(metadataValue(stream.metadata, MetadataKey.extensions));
    const accepted = new Set([...requested].filter((e) => SUPPORTED.has(e)));

    const headers = new Metadata();
    headers.set(MetadataKey.serverID, this.options.serverID);
    headers.set(MetadataKey.serverCount, String(this.options.serverCount));
    if (requested.size > 0) headers.set(MetadataKey.extensions, [...accepted].join(','));
    if (accepted.has(Extension.flowControl)) {
      headers.set(MetadataKey.connectionWindow, String(this.options.connectionWindow));
    }
    const windows = {
      local: this.options.connectionWindow,
      peer: parseConnectionWindow(metadataValue(stream.metadata, MetadataKey.connectionWindow)),
    };
    stream.sendMetadata(headers);

    const log = this.log.child({ agentID });
    const backend = new Backend(agentID, identifiers, peer, accepted, windows, stream, log, this.metrics);
    this.metrics.grpcConnections.labels('Connect').inc();
    this.backends.add(backend);
    log.info({ peer, identifiers: identifierText, extensions: [...accepted] }, 'agent connected');

    let gone = false;
    const leave = (reason: string) => {
      if (gone) return;
      gone = true;
      this.backends.remove(backend);
      this.metrics.grpcConnections.labels('Connect').dec();
      this.broker.backendGone(backend, reason);
      log.info({ reason, connections: backend.connections.size }, 'agent disconnected');
      if (!stream.writableEnded) stream.end();
    };
    stream.on('data', (p: Packet) => {
      this.broker.handleAgentPacket(backend, p);
    });
    stream.on('end', () => {
      leave('agent closed the stream');
    });
    stream.on('cancelled', () => {
      leave('stream cancelled (connection lost or keepalive timeout)');
    });
    stream.on('error', (err: Error) => {
      this.metrics.streamError('from_agent', 'Unknown', undefined);
      leave(`stream error: ${err.message}`);
    });
    stream.on('close', () => {
      leave('stream closed');
    });
  }
}
