// The set of connected agent streams and the choice of one for a dial. Routing strategies
// (destHost, defaultRoute) plug in here; for now any ready agent, chosen at random.
import type { Backend } from './backend.js';
import type { ServerMetrics } from '../metrics.js';

export class BackendManager {
  private readonly backends: Backend[] = [];

  constructor(private readonly metrics: ServerMetrics) {}

  add(backend: Backend): void {
    this.backends.push(backend);
    this.metrics.readyBackends.set(this.backends.length);
  }

  remove(backend: Backend): void {
    const i = this.backends.indexOf(backend);
    if (i >= 0) this.backends.splice(i, 1);
    this.metrics.readyBackends.set(this.backends.length);
  }

  /** A ready agent for a dial to `address`, or undefined when none can serve. */
  pick(_address: string): Backend | undefined {
    if (this.backends.length === 0) return undefined;
    return this.backends[Math.floor(Math.random() * this.backends.length)];
  }

  get size(): number {
    return this.backends.length;
  }
}
