// One prom-client Registry per component instance: server and agent share a process in
// `npm start` and in tests, and the global registry would make their names collide.
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(withProcessMetrics: boolean): Registry {
  const registry = new Registry();
  if (withProcessMetrics) collectDefaultMetrics({ register: registry });
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
