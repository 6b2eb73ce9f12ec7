// stream_packets_total and stream_errors_total, shared by server and agent as upstream
// shares them (konnectivity-client/pkg/common/metrics), with label children resolved once
// because the per-packet path must not hash label sets.
import { Counter, type Registry } from 'prom-client';
import { packetTypeNames } from '../proto/packet.js';

export class StreamMetrics<Segment extends string> {
  readonly packets: Counter<'segment' | 'packet_type'>;
  readonly errors: Counter<'segment' | 'code' | 'packet_type'>;
  private readonly children = new Map<string, Counter.Internal>();

  constructor(prefix: string, registry: Registry) {
    this.packets = new Counter({
      name: prefix + 'stream_packets_total',
      help: 'Count of packets processed, by segment and packet type (example: from_client, DIAL_REQ)',
      labelNames: ['segment', 'packet_type'],
      registers: [registry],
    });
    this.errors = new Counter({
      name: prefix + 'stream_errors_total',
      help: 'Count of gRPC stream errors, by segment, grpc Code, packet type. (example: from_agent, Code.Unavailable, DIAL_RSP)',
      labelNames: ['segment', 'code', 'packet_type'],
      registers: [registry],
    });
  }

  packet(segment: Segment, type: number): void {
    const key = `${segment}/${type}`;
    let child = this.children.get(key);
    if (!child) {
      child = this.packets.labels(segment, packetTypeNames[type] ?? 'UNKNOWN');
      this.children.set(key, child);
    }
    child.inc();
  }

  error(segment: Segment, code: string, type: number | undefined): void {
    this.errors.labels(segment, code, type === undefined ? '' : (packetTypeNames[type] ?? 'UNKNOWN')).inc();
  }
}
