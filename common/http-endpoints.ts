// Small HTTP servers for the health port (/healthz, /readyz) and the admin port (/metrics).
import http from 'node:http';
import { listen } from './listen.js';
import type { Registry } from 'prom-client';

export type Route = (req: http.IncomingMessage) => Promise<{ status: number; type: string; body: string }>;

export function healthRoutes(ready: () => { ok: boolean; reason: string }): Record<string, Route> {
  return {
    '/healthz': () => Promise.resolve({ status: 200, type: 'text/plain', body: 'ok' }),
    '/readyz': () => {
      const r = ready();
      return Promise.resolve({ status: r.ok ? 200 : 503, type: 'text/plain', body: r.ok ? 'ok' : r.reason });
    },
  };
}

export function metricsRoute(registry: Registry): Record<string, Route> {
  return {
    '/metrics': async () => ({ status: 200, type: registry.contentType, body: await registry.metrics() }),
  };
}

export class HttpEndpoint {
  private readonly server: http.Server;

  constructor(private readonly routes: Record<string, Route>) {
    this.server = http.createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      const route = this.routes[path];
      if (!route || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res
          .writeHead(route ? 405 : 404, { 'content-type': 'text/plain' })
          .end(route ? 'method not allowed' : 'not found');
        return;
      }
      route(req).then(
        (r) => res.writeHead(r.status, { 'content-type': r.type }).end(r.body),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err)),
      );
    });
    this.server.keepAliveTimeout = 5000;
  }

  async listen(port: number, host: string): Promise<number> {
    return (await listen(this.server, { port, host })).port;
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
