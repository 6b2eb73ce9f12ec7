// One prom-client Registry per component instance: server and agent share a process in
// `npm start` and in tests, and the global registry would make their names collide.
import { Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The event-loop lag histogram samples with a timer this often. prom-client's default, 10 ms,
 * wakes an idle process 100 times a second: half a percent of a core doing nothing (measured
 * with bench:scale). At 100 ms a stall of the loop still shows in the lag quantiles.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

export function createRegistry(withProcessMetrics: boolean): Registry {
  const registry = new Registry();
  if (withProcessMetrics) {
    collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }
  return registry;
}

/** Segments of the tunnel, as the upstream stream_packets_total / stream_errors_total labels. */
export const Segment = {
  fromClient: 'from_client',
  toClient: 'to_client',
  fromAgent: 'from_agent',
  toAgent: 'to_agent',
  fromServer: 'from_server',
  toServer: 'to_server',
} as const;
