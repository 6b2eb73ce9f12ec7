// Offline validation of Kubernetes objects, two ways:
// - against the OpenAPI schemas, with kubernetes-models (built-in kinds) and
//   @kubernetes-models/prometheus-operator (monitoring.coreos.com): types, required fields,
//   formats (quantities, ports);
// - unknown fields, as kube-apiserver's strict field validation (`kubectl apply` refuses them):
//   the OpenAPI schemas allow additional properties, so every field is looked up in
//   @kubernetes/client-node's generated models (attributeTypeMap), built from the same OpenAPI.
// Both packages are CommonJS: loaded with require, by the kind's module path.
import { createRequire } from 'node:module';
import type { KubeObject } from './manifests.js';

const require = createRequire(import.meta.url);

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;

function modelModule(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/')) {
    return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  }
  // Core kinds live under kubernetes-models/v1/, the others under <group>/<version>/.
  return `kubernetes-models/${apiVersion}/${kind}`;
}

/** Schema errors of one object (kubernetes-models' messages), or [] when valid. */
export function schemaErrors(object: KubeObject): string[] {
  const path = modelModule(object.apiVersion, object.kind);
  let Model: ModelClass | undefined;
  try {
    Model = (require(path) as Record<string, ModelClass | undefined>)[object.kind];
  } catch {
    Model = undefined;
  }
  if (!Model) return [`no OpenAPI schema for ${object.apiVersion} ${object.kind} (looked for ${path})`];
  try {
    new Model(object).validate();
    return [];
  } catch (err) {
    return [(err as Error).message];
  }
}

interface Attribute {
  baseName: string;
  type: string;
}
type ClientModels = Record<string, { getAttributeTypeMap?: () => Attribute[] } | undefined>;

let clientModels: ClientModels | undefined;

async function models(): Promise<ClientModels> {
  clientModels ??= (await import('@kubernetes/client-node')) as unknown as ClientModels;
  return clientModels;
}

/** client-node's class name of a kind: apps/v1 Deployment → V1Deployment. */
function className(apiVersion: string, kind: string): string {
  const version = apiVersion.split('/').pop() ?? apiVersion;
  return version.charAt(0).toUpperCase() + version.slice(1) + kind;
}

const SCALARS = new Set(['string', 'number', 'boolean', 'Date', 'any', 'object', 'IntOrString']);

/**
 * Fields of a built-in object that its API version does not define ("spec.template.spec.
 * containers[0].readOnlyRootFileSystem"), or undefined for kinds client-node does not model
 * (custom resources: their schema check above is all there is).
 */
export async function unknownFields(object: KubeObject): Promise<string[] | undefined> {
  const all = await models();
  const root = className(object.apiVersion, object.kind);
  if (!all[root]?.getAttributeTypeMap) return undefined;
  const out: string[] = [];
  const walk = (value: unknown, type: string, path: string): void => {
    if (value === null || value === undefined || SCALARS.has(type)) return;
    const array = /^Array<(.+)>$/.exec(type);
    if (array) {
      if (Array.isArray(value)) value.forEach((v: unknown, i) => walk(v, array[1] ?? '', `${path}[${i}]`));
      return;
    }
    const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
    if (map) {
      if (typeof value === 'object') {
        for (const [k, v] of Object.entries(value)) walk(v, map[1] ?? '', `${path}.${k}`);
      }
      return;
    }
    const attributes = all[type]?.getAttributeTypeMap?.();
    if (!attributes) {
      out.push(`${path}: no model ${type} to check against`);
      return;
    }
    if (typeof value !== 'object') return;
    for (const [key, v] of Object.entries(value)) {
      const attribute = attributes.find((a) => a.baseName === key);
      const at = path ? `${path}.${key}` : key;
      if (!attribute) out.push(at);
      else walk(v, attribute.type, at);
    }
  };
  walk(object, root, '');
  return out;
}
