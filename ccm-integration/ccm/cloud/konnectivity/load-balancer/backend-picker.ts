// Which node takes a new connection: among the usable (not unhealthy) backends, the one with
// the fewest open connections, ties broken at random. With sessionAffinity: ClientIP a client
// keeps its node while that node stays usable and the client comes back within the timeout
// (kube-proxy's semantics: the timeout runs from the client's last connection).

export interface PickableBackend {
  /** The node's name: affinity remembers nodes, so it survives a nodePort change. */
  readonly node: string;
  readonly open: number;
  usable(): boolean;
}

/** Beyond this many remembered clients, expired ones are swept, then the oldest forgotten. */
const MAX_AFFINITY_ENTRIES = 65_536;

export class BackendPicker<B extends PickableBackend> {
  private backends: readonly B[] = [];
  /** Client IP → its node and when that stops holding (ms, monotonic). Oldest first. */
  private readonly affinity = new Map<string, { node: string; expiresAt: number }>();
  private affinityTimeoutMs: number | undefined;

  constructor(
    private readonly random: () => number = Math.random,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** New backends and affinity setting; clients keep their node when it is still a backend. */
  update(backends: readonly B[], affinityTimeoutMs: number | undefined): void {
    this.backends = backends;
    this.affinityTimeoutMs = affinityTimeoutMs;
    if (affinityTimeoutMs === undefined) this.affinity.clear();
  }

  get all(): readonly B[] {
    return this.backends;
  }

  /** The backend for a connection from `client`, skipping `exclude` (dials that failed); undefined when none is usable. */
  pick(client: string, exclude?: ReadonlySet<B>): B | undefined {
    const usable = this.backends.filter((b) => b.usable() && !exclude?.has(b));
    if (usable.length === 0) return undefined;
    const timeout = this.affinityTimeoutMs;
    if (timeout === undefined) return this.leastOpen(usable);
    const now = this.now();
    const remembered = this.affinity.get(client);
    let chosen: B | undefined;
    if (remembered && remembered.expiresAt > now) chosen = usable.find((b) => b.node === remembered.node);
    chosen ??= this.leastOpen(usable);
    this.remember(client, chosen.node, now + timeout, now);
    return chosen;
  }

  private leastOpen(usable: readonly B[]): B {
    let fewest = Infinity;
    let ties: B[] = [];
    for (const b of usable) {
      if (b.open < fewest) {
        fewest = b.open;
        ties = [b];
      } else if (b.open === fewest) {
        ties.push(b);
      }
    }
    return ties[Math.floor(this.random() * ties.length)] ?? (ties[0] as B);
  }

  private remember(client: string, node: string, expiresAt: number, now: number): void {
    // Re-inserted, so the map stays ordered by last use.
    this.affinity.delete(client);
    this.affinity.set(client, { node, expiresAt });
    if (this.affinity.size <= MAX_AFFINITY_ENTRIES) return;
    for (const [ip, entry] of this.affinity) if (entry.expiresAt <= now) this.affinity.delete(ip);
    while (this.affinity.size > MAX_AFFINITY_ENTRIES) {
      const oldest = this.affinity.keys().next();
      if (oldest.done) break;
      this.affinity.delete(oldest.value);
    }
  }
}
