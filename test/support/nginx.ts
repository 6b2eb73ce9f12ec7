// Debian's nginx as a TLS-terminating HTTP/1.1 reverse proxy with WebSocket upgrade in front
// of the server's agent port, run in the foreground as the test's own process: what an L7
// balancer or ingress does. It dials the server with a client certificate of its own and
// verifies the server by name (nginx 1.22 does not match IP addresses in certificates).
// Its proxy_pass https:// offers no ALPN: the server treats that as HTTP/1.1.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_WEBSOCKET_PATH } from '../../proto/websocket.js';
import { Proc } from './processes.js';
import { freePort, waitListening } from './squid.js';
import { within } from './wait.js';

const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((p) => existsSync(p));

/** Why the nginx tests cannot run here, or undefined when they can. */
export function nginxMissing(): string | undefined {
  return NGINX ? undefined : 'nginx is not installed (.ci/run installs nginx-light with apt)';
}

export interface NginxOptions {
  /** The server's agent port (TLS), on 127.0.0.1. */
  upstreamPort: number;
  /** nginx's own listener certificate. */
  cert: string;
  key: string;
  /** Client certificate nginx presents to the server, and the CA it verifies the server with. */
  clientCert: string;
  clientKey: string;
  ca: string;
  /** A DNS name in the server's certificate. */
  serverName: string;
}

export class Nginx {
  port = 0;
  readonly dir: string;
  private proc: Proc | undefined;

  constructor(private readonly options: NginxOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'knp-nginx-'));
    // Workers of an nginx started as root run as nobody: they must reach their temp paths.
    chmodSync(this.dir, 0o755);
  }

  async start(): Promise<this> {
    if (!NGINX) throw new Error(nginxMissing());
    this.port = await freePort();
    const conf = join(this.dir, 'nginx.conf');
    writeFileSync(conf, this.config(), { mode: 0o644 });
    this.proc = new Proc(
      spawn(NGINX, ['-p', this.dir, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    const proc = this.proc;
    await within(
      Promise.race([
        waitListening(this.port, 'nginx'),
        proc.exited.then((code) => {
          throw new Error(`nginx exited (${String(code)}): ${proc.output()}\n${this.errorLog()}`);
        }),
      ]),
      30_000,
      'nginx start',
    );
    return this;
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    await proc?.kill('SIGTERM');
  }

  errorLog(): string {
    const path = join(this.dir, 'error.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  accessLog(): string {
    const path = join(this.dir, 'access.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  private config(): string {
    const o = this.options;
    const d = this.dir;
    return `worker_processes 1;
error_log ${join(d, 'error.log')} info;
pid ${join(d, 'nginx.pid')};
events { worker_connections 512; }
http {
  access_log ${join(d, 'access.log')};
  client_body_temp_path ${join(d, 'client_body')};
  proxy_temp_path ${join(d, 'proxy')};
  fastcgi_temp_path ${join(d, 'fastcgi')};
  uwsgi_temp_path ${join(d, 'uwsgi')};
  scgi_temp_path ${join(d, 'scgi')};
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${this.port} ssl;
    ssl_certificate ${o.cert};
    ssl_certificate_key ${o.key};
    location ${AGENT_WEBSOCKET_PATH} {
      proxy_pass https://127.0.0.1:${o.upstreamPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_buffering off;
      proxy_read_timeout 1h;
      proxy_send_timeout 1h;
      proxy_ssl_certificate ${o.clientCert};
      proxy_ssl_certificate_key ${o.clientKey};
      proxy_ssl_trusted_certificate ${o.ca};
      proxy_ssl_verify on;
      proxy_ssl_name ${o.serverName};
      proxy_ssl_server_name on;
    }
  }
}
`;
  }
}
