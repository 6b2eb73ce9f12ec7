// One prom-client Registry per component instance: server and agent share a process in
// `npm start` and in tests, and the global registry would make their names collide.
import { Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The event-loop lag histogram samples with a timer this often, and each sample wakes an idle
 * process: prom-client's default, 10 ms, costs half a percent of a core doing nothing, 100 ms
 * 0.2%, 500 ms 0.05% (measured here, a bare process each). At 500 ms every stall of half a second
 * shows in the lag quantiles and a shorter one in proportion to its length; the
 * `nodejs_eventloop_lag_seconds` gauge is measured at each scrape, without a timer.
 */
const EVENT_LOOP_SAMPLE_MS = 500;

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
