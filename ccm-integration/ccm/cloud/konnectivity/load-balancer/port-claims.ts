// Which Service holds which TCP port on which pool address. Services share an address as long
// as their ports do not collide; a claim is made before the listeners are bound, so two
// concurrent syncs never pick the same port.

export interface PortConflict {
  port: number;
  /** The Service ("namespace/name") that holds the port. */
  owner: string;
}

export class PortClaims {
  private readonly byAddress = new Map<string, Map<number, string>>();

  /** The ports of `ports` on `address` held by another owner than `owner`. */
  conflicts(address: string, ports: readonly number[], owner: string): PortConflict[] {
    const held = this.byAddress.get(address);
    if (!held) return [];
    const out: PortConflict[] = [];
    for (const port of ports) {
      const holder = held.get(port);
      if (holder !== undefined && holder !== owner) out.push({ port, owner: holder });
    }
    return out;
  }

  fits(address: string, ports: readonly number[], owner: string): boolean {
    return this.conflicts(address, ports, owner).length === 0;
  }

  /** Claims every port of `ports` on `address` for `owner` (callers check fits() first). */
  claim(address: string, ports: readonly number[], owner: string): void {
    let held = this.byAddress.get(address);
    if (!held) {
      held = new Map();
      this.byAddress.set(address, held);
    }
    for (const port of ports) held.set(port, owner);
  }

  /** Releases what `owner` holds, except `keep` (the ports it goes on holding on `keepAddress`). */
  release(owner: string, keepAddress?: string, keep: readonly number[] = []): void {
    for (const [address, held] of this.byAddress) {
      for (const [port, holder] of held) {
        if (holder === owner && !(address === keepAddress && keep.includes(port))) held.delete(port);
      }
      if (held.size === 0) this.byAddress.delete(address);
    }
  }
}
