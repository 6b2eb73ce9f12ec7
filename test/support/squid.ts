// Debian's squid as a corporate forward proxy, run in the foreground as the test's own
// process: CONNECT allowed to one port only, optionally behind Basic auth (basic_ncsa_auth
// and an htpasswd file made here). .ci/run installs squid and apache2-utils (htpasswd).
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Proc } from './processes.js';
import { waitFor, within } from './wait.js';

const SQUID = ['/usr/sbin/squid', '/usr/local/sbin/squid'].find((p) => existsSync(p));
const NCSA_AUTH = '/usr/lib/squid/basic_ncsa_auth';

/** Why the squid tests cannot run here, or undefined when they can. */
export function squidMissing(): string | undefined {
  if (!SQUID) return 'squid is not installed (.ci/run installs it with apt)';
  if (!existsSync(NCSA_AUTH)) return `${NCSA_AUTH} is missing (Debian's squid package has it)`;
  try {
    execFileSync('htpasswd', ['-h'], { stdio: 'ignore' });
  } catch (err) {
    // htpasswd -h exits 2 after printing its usage: only a missing binary is a problem.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'htpasswd is missing (apache2-utils)';
  }
  return undefined;
}

/** A port free right now (squid and nginx cannot listen on 0 and tell us the port). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export function waitListening(port: number, what: string): Promise<true> {
  return waitFor(`${what} listening on ${port}`, () => {
    return new Promise<true | undefined>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(undefined));
    });
  });
}

export interface SquidOptions {
  /** The one port CONNECT may reach (the server's agent port). */
  connectPort: number;
  /** Basic auth users (name → password); none: no authentication. */
  users?: Record<string, string>;
  /** Listen with TLS (https_port, an https:// proxy URL) with this certificate and key. */
  tls?: { cert: string; key: string };
}

export class Squid {
  port = 0;
  readonly dir: string;
  private proc: Proc | undefined;

  constructor(private readonly options: SquidOptions) {
    this.dir = mkdtempSync(join(tmpdir(), 'knp-squid-'));
    // squid started as root works as the "proxy" user: it must reach its logs and helpers' files.
    chmodSync(this.dir, 0o777);
  }

  /** The proxy URL for agents, with credentials when given. */
  url(credentials?: { user: string; password: string }): string {
    const auth = credentials
      ? `${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@`
      : '';
    return `${this.options.tls ? 'https' : 'http'}://${auth}127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    if (!SQUID) throw new Error(squidMissing());
    if (this.port === 0) this.port = await freePort();
    const conf = join(this.dir, 'squid.conf');
    writeFileSync(conf, this.config(), { mode: 0o644 });
    this.proc = new Proc(spawn(SQUID, ['-N', '-f', conf], { stdio: ['ignore', 'pipe', 'pipe'] }));
    const proc = this.proc;
    await within(
      Promise.race([
        waitListening(this.port, 'squid'),
        proc.exited.then((code) => {
          throw new Error(`squid exited (${String(code)}): ${proc.output()}\n${this.cacheLog()}`);
        }),
      ]),
      30_000,
      'squid start',
    );
    return this;
  }

  /** Stops squid (its tunnels break) and starts it again on the same port. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc) return;
    // shutdown_lifetime 0: squid leaves at once on SIGTERM; SIGKILL if it does not.
    await proc.kill('SIGTERM');
  }

  /** CONNECTs in the access log: squid writes one when its tunnel closes. */
  accessLog(): string {
    const path = join(this.dir, 'access.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  cacheLog(): string {
    const path = join(this.dir, 'cache.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  private config(): string {
    const { connectPort, users, tls } = this.options;
    let listen = `http_port 127.0.0.1:${this.port}`;
    if (tls) {
      // Copies squid can read once it runs as its own user.
      const cert = join(this.dir, 'proxy.pem');
      const key = join(this.dir, 'proxy-key.pem');
      writeFileSync(cert, readFileSync(tls.cert), { mode: 0o644 });
      writeFileSync(key, readFileSync(tls.key), { mode: 0o644 });
      listen = `https_port 127.0.0.1:${this.port} tls-cert=${cert} tls-key=${key}`;
    }
    const lines = [
      listen,
      'visible_hostname konnectivity-test-proxy',
      'pid_filename none',
      'cache deny all',
      'cache_mem 8 MB',
      'cache_store_log none',
      'netdb_filename none',
      'shutdown_lifetime 0 seconds',
      `coredump_dir ${this.dir}`,
      `access_log stdio:${join(this.dir, 'access.log')}`,
      `cache_log ${join(this.dir, 'cache.log')}`,
      'acl CONNECT method CONNECT',
      `acl agent_port port ${connectPort}`,
      'http_access deny !CONNECT',
      'http_access deny CONNECT !agent_port',
    ];
    if (users && Object.keys(users).length > 0) {
      const htpasswd = join(this.dir, 'htpasswd');
      let first = true;
      for (const [user, password] of Object.entries(users)) {
        execFileSync('htpasswd', [first ? '-bcm' : '-bm', htpasswd, user, password], { stdio: 'ignore' });
        first = false;
      }
      chmodSync(htpasswd, 0o644);
      lines.push(
        `auth_param basic program ${NCSA_AUTH} ${htpasswd}`,
        'auth_param basic children 2',
        'auth_param basic realm konnectivity-test',
        'acl authenticated proxy_auth REQUIRED',
        'http_access allow CONNECT agent_port authenticated',
      );
    } else {
      lines.push('http_access allow CONNECT agent_port');
    }
    lines.push('http_access deny all');
    return lines.join('\n') + '\n';
  }
}
