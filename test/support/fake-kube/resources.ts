// The table of resources the fake serves, and lookups by URL segments, by apiVersion/kind
// (for seeding objects) and by the names tests use ("nodes", "leases.coordination.k8s.io").

export interface ResourceType {
  /** "" for the core group (served under /api/v1). */
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  /**
   * Has a /status subresource: writes to the main resource keep the stored status, writes to
   * /status keep the stored spec (as the real strategies of nodes, services and pods do).
   */
  status?: boolean;
  /** fieldSelector fields beyond metadata.name and metadata.namespace (dotted paths). */
  selectableFields?: string[];
  /** PUT of a missing object creates it (true for core endpoints and events upstream). */
  createOnUpdate?: boolean;
}

export const DEFAULT_RESOURCES: readonly ResourceType[] = [
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false, status: true },
  {
    group: '',
    version: 'v1',
    plural: 'nodes',
    kind: 'Node',
    namespaced: false,
    status: true,
    selectableFields: ['spec.unschedulable'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'services',
    kind: 'Service',
    namespaced: true,
    status: true,
    selectableFields: ['spec.clusterIP', 'spec.type'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'pods',
    kind: 'Pod',
    namespaced: true,
    status: true,
    selectableFields: [
      'spec.nodeName',
      'spec.restartPolicy',
      'spec.schedulerName',
      'spec.serviceAccountName',
      'spec.hostNetwork',
      'status.phase',
      'status.podIP',
      'status.nominatedNodeName',
    ],
  },
  {
    group: '',
    version: 'v1',
    plural: 'events',
    kind: 'Event',
    namespaced: true,
    createOnUpdate: true,
    selectableFields: [
      'involvedObject.kind',
      'involvedObject.namespace',
      'involvedObject.name',
      'involvedObject.uid',
      'involvedObject.apiVersion',
      'involvedObject.resourceVersion',
      'involvedObject.fieldPath',
      'reason',
      'reportingComponent',
      'source',
      'type',
    ],
  },
  {
    group: '',
    version: 'v1',
    plural: 'endpoints',
    kind: 'Endpoints',
    namespaced: true,
    createOnUpdate: true,
  },
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
  {
    group: '',
    version: 'v1',
    plural: 'secrets',
    kind: 'Secret',
    namespaced: true,
    selectableFields: ['type'],
  },
  { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease', namespaced: true },
  {
    group: 'discovery.k8s.io',
    version: 'v1',
    plural: 'endpointslices',
    kind: 'EndpointSlice',
    namespaced: true,
  },
  {
    group: 'events.k8s.io',
    version: 'v1',
    plural: 'events',
    kind: 'Event',
    namespaced: true,
    selectableFields: ['regarding.kind', 'regarding.namespace', 'regarding.name', 'reason', 'type'],
  },
];

/** Identity of a resource across re-registrations: group, version and plural. */
export function resourceKey(r: ResourceType): string {
  return `${r.group}/${r.version}/${r.plural}`;
}

export function apiVersionOf(r: ResourceType): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

/** "nodes", "leases.coordination.k8s.io": the name kubectl and error messages use. */
export function qualifiedName(r: ResourceType): string {
  return r.group ? `${r.plural}.${r.group}` : r.plural;
}

export class ResourceRegistry {
  private readonly byPath = new Map<string, ResourceType>();
  private readonly byKind = new Map<string, ResourceType>();
  private readonly byName = new Map<string, ResourceType>();

  constructor(resources: readonly ResourceType[] = DEFAULT_RESOURCES) {
    for (const r of resources) this.register(r);
  }

  register(r: ResourceType): void {
    if (!/^[a-z0-9]+$/.test(r.plural))
      throw new Error(`resource plural "${r.plural}" must be lower-case letters and digits`);
    this.byPath.set(resourceKey(r), r);
    this.byKind.set(`${apiVersionOf(r)}/${r.kind}`, r);
    this.byName.set(qualifiedName(r), r);
    // A bare plural names the core resource when there is one, else the first group to claim it.
    if (!this.byName.has(r.plural) || r.group === '') this.byName.set(r.plural, r);
  }

  all(): ResourceType[] {
    return [...new Set(this.byPath.values())];
  }

  fromPath(group: string, version: string, plural: string): ResourceType | undefined {
    return this.byPath.get(`${group}/${version}/${plural}`);
  }

  fromKind(apiVersion: string, kind: string): ResourceType {
    const r = this.byKind.get(`${apiVersion}/${kind}`);
    if (!r) throw new Error(`no resource registered for apiVersion "${apiVersion}" kind "${kind}"`);
    return r;
  }

  /** By "plural" or "plural.group"; throws naming the known resources when there is none. */
  fromName(name: string): ResourceType {
    const r = this.byName.get(name);
    if (!r) {
      throw new Error(`unknown resource "${name}"; registered: ${[...this.byName.keys()].sort().join(', ')}`);
    }
    return r;
  }
}
