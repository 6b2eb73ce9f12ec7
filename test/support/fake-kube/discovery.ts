// Discovery documents (/api, /apis, /api/v1, /apis/<group>/<version>, /version) built from the
// resource table, so kubectl and discovery-driven clients find what the fake serves.
import type { ResourceType } from './resources.js';

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
const EXTRA_GROUPS = [{ group: 'authentication.k8s.io', version: 'v1' }];

export function discovery(path: string, resources: ResourceType[], host: string): unknown {
  if (path === '/version') {
    return { major: '1', minor: '32', gitVersion: 'v1.32.0-fake', platform: 'linux/amd64' };
  }
  if (path === '/api') {
    return {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: host }],
    };
  }
  if (path === '/apis') {
    const versions = new Map<string, Set<string>>();
    for (const { group, version } of [...resources, ...EXTRA_GROUPS]) {
      if (group) versions.set(group, (versions.get(group) ?? new Set()).add(version));
    }
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [...versions].map(([name, vs]) => {
        const list = [...vs].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        return { name, versions: list, preferredVersion: list[0] };
      }),
    };
  }
  const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(path);
  if (!m) return undefined;
  const group = m[2] ?? '';
  const version = m[1] ?? m[3] ?? '';
  const served = resources.filter((r) => r.group === group && r.version === version);
  if (served.length === 0) return undefined;
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group ? `${group}/${version}` : version,
    resources: served.flatMap((r) => [
      {
        name: r.plural,
        singularName: r.kind.toLowerCase(),
        namespaced: r.namespaced,
        kind: r.kind,
        verbs: VERBS,
      },
      ...(r.status
        ? [
            {
              name: `${r.plural}/status`,
              singularName: '',
              namespaced: r.namespaced,
              kind: r.kind,
              verbs: ['get', 'patch', 'update'],
            },
          ]
        : []),
    ]),
  };
}
