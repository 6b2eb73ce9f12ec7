// JSON merge patch (RFC 7386, application/merge-patch+json): objects merge key by key, null
// deletes a key, anything else (arrays included) replaces the target value.
import { clone, isObject } from './json.js';

export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) Reflect.deleteProperty(out, key);
    else out[key] = applyMergePatch(out[key], value);
  }
  return out;
}
