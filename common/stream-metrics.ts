// stream_packets_total and stream_errors_total, shared by server and agent as upstream
// shares them (konnectivity-client/pkg/common/metrics). Packets are counted in plain numbers
// and handed to prom-client only when scraped: a labelled child's inc() still hashes its label
// set on every call, a dozen times per dial.
import { Counter, type Registry } from 'prom-client';
import { packetTypeNames } from '../proto/packet.js';

/** Types outside packetTypeNames share the last slot, counted as UNKNOWN. */
const UNKNOWN_SLOT = Math.max(...Object.keys(packetTypeNames).map(Number)) + 1;

export class StreamMetrics<Segment extends string> {
  readonly packets: Counter<'segment' | 'packet_type'>;
  readonly errors: Counter<'segment' | 'code' | 'packet_type'>;
  private readonly counts = new Map<Segment, Float64Array>();

  constructor(prefix: string, registry: Registry) {
    const counts = this.counts;
    this.packets = new Counter({
      name: prefix + 'stream_packets_total',
      help: 'Count of packets processed, by segment and packet type (example: from_client, DIAL_REQ)',
      labelNames: ['segment', 'packet_type'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [segment, bySlot] of counts) {
          bySlot.forEach((n, slot) => {
            if (n > 0) this.inc({ segment, packet_type: packetTypeNames[slot] ?? 'UNKNOWN' }, n);
          });
        }
      },
    });
    this.errors = new Counter({
      name: prefix + 'stream_errors_total',
      help: 'Count of gRPC stream errors, by segment, grpc Code, packet type. (example: from_agent, Code.Unavailable, DIAL_RSP)',
      labelNames: ['segment', 'code', 'packet_type'],
      registers: [registry],
    });
  }

  packet(segment: Segment, type: number): void {
    let bySlot = this.counts.get(segment);
    if (!bySlot) {
      bySlot = new Float64Array(UNKNOWN_SLOT + 1);
      this.counts.set(segment, bySlot);
    }
    const slot = type >= 0 && type < UNKNOWN_SLOT ? type : UNKNOWN_SLOT;
    bySlot[slot] = (bySlot[slot] ?? 0) + 1;
  }

  error(segment: Segment, code: string, type: number | undefined): void {
    this.errors.labels(segment, code, type === undefined ? '' : (packetTypeNames[type] ?? 'UNKNOWN')).inc();
  }
}
