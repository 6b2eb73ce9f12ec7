// coordination.k8s.io/v1 Leases as upstream uses them to count proxy-servers: each server
// holds `konnectivity-proxy-server-<serverID>`, labelled with --lease-label; a lease counts
// while renewTime (or acquireTime) + leaseDurationSeconds is in the future.
export interface LeaseLike {
  spec?: {
    renewTime?: Date | string | undefined;
    acquireTime?: Date | string | undefined;
    leaseDurationSeconds?: number | undefined;
  };
}

export function isLeaseValid(lease: LeaseLike, now = Date.now()): boolean {
  const spec = lease.spec;
  const last = spec?.renewTime ?? spec?.acquireTime;
  const seconds = spec?.leaseDurationSeconds;
  if (last === undefined || seconds === undefined) return false;
  const at = last instanceof Date ? last.getTime() : Date.parse(last);
  return Number.isFinite(at) && at + seconds * 1000 > now;
}

export function leaseName(serverID: string): string {
  return `konnectivity-proxy-server-${serverID}`;
}

export class LabelSyntaxError extends Error {
  override readonly name = 'LabelSyntaxError';
}

/** "k=v,k2=v2" → labels; throws LabelSyntaxError on a term that is not k=v. */
export function parseLabels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const term of text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)) {
    const eq = term.indexOf('=');
    const key = term.slice(0, eq).trim();
    const value = term.slice(eq + 1).trim();
    if (
      eq <= 0 ||
      !/^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/.test(key) ||
      !/^[A-Za-z0-9._-]*$/.test(value)
    ) {
      throw new LabelSyntaxError(`"${term}" is not a label (want key=value)`);
    }
    out[key] = value;
  }
  return out;
}

export function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
