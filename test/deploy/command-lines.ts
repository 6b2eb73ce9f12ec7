// The command lines of our containers in the built manifests, as the kubelet would run them
// ($(VAR) expanded from the container's env) and as our binaries would read them (our own flag
// parser and config validation, the same code bin/* runs).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { agentConfigFromFlags, agentFlags } from '../../agent/options.js';
import { ccmConfigFromFlags, ccmFlags } from '../../ccm-integration/ccm/options.js';
import { parseFlags, type FlagTable } from '../../common/flags/flag-set.js';
import { createLogger } from '../../common/log.js';
import { serverConfigFromFlags, serverFlags } from '../../server/options.js';
import {
  envRefs,
  expandEnvRefs,
  find,
  type BinaryName,
  type KubeObject,
  type RunnableContainer,
} from './manifests.js';

export const FLAG_TABLES: Record<BinaryName, FlagTable> = {
  'proxy-server': serverFlags,
  'proxy-agent': agentFlags,
  'konnectivity-ccm': ccmFlags,
};

/** What the downward API gives in the tests: a node, its address, a pod. */
export const SAMPLE_FIELDS: Record<string, string> = {
  'spec.nodeName': 'node-1',
  'status.hostIP': '127.0.0.1',
  'status.podIP': '127.0.0.1',
  'metadata.name': 'konnectivity-pod-0',
  'metadata.namespace': 'kube-system',
};

export interface ContainerEnv {
  env: Map<string, string>;
  /** Env entries that cannot be resolved (a missing ConfigMap or key, an unknown field). */
  problems: string[];
}

/** The container's env as the kubelet resolves it, ConfigMaps taken from the same build. */
export function containerEnv(rc: RunnableContainer, objects: readonly KubeObject[]): ContainerEnv {
  const env = new Map<string, string>();
  const problems: string[] = [];
  for (const e of rc.container.env ?? []) {
    if (e.value !== undefined) {
      env.set(e.name, expandEnvRefs(e.value, env));
      continue;
    }
    const field = e.valueFrom?.fieldRef?.fieldPath;
    const cmRef = e.valueFrom?.configMapKeyRef;
    if (field !== undefined) {
      const sample = SAMPLE_FIELDS[field];
      if (sample === undefined) problems.push(`env ${e.name}: fieldRef ${field} is not one the tests know`);
      else env.set(e.name, sample);
    } else if (cmRef) {
      const cms = find(objects, 'ConfigMap', cmRef.name).filter(
        (cm) => (cm.metadata.namespace ?? 'default') === rc.workload.namespace,
      );
      const data = (cms[0]?.data ?? {}) as Record<string, string>;
      const value = data[cmRef.key];
      if (value === undefined) {
        problems.push(
          `env ${e.name}: ConfigMap ${rc.workload.namespace}/${cmRef.name} key ${cmRef.key} is not in this build`,
        );
      } else env.set(e.name, value);
    } else {
      problems.push(`env ${e.name}: no value the tests can resolve`);
    }
  }
  return { env, problems };
}

/** args with $(VAR) expanded; every reference must be defined by the container's env. */
export function expandedArgs(
  rc: RunnableContainer,
  env: ReadonlyMap<string, string>,
): { args: string[]; problems: string[] } {
  const problems: string[] = [];
  const args = (rc.container.args ?? []).map((arg) => {
    for (const ref of envRefs(arg)) {
      if (!env.has(ref)) problems.push(`${arg}: $(${ref}) is not defined in the container's env`);
    }
    return expandEnvRefs(arg, env);
  });
  return { args, problems };
}

/** The flag values of args that are absolute paths, by flag name. */
export function pathFlags(args: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const arg of args) {
    const m = /^--([^=]+)=(\/.*)$/.exec(arg);
    if (m?.[1] && m[2]) out.set(m[1], m[2]);
  }
  return out;
}

/** Rewrites every absolute path value under `root` (the container's filesystem, mapped). */
export function rootedArgs(args: readonly string[], root: string): string[] {
  return args.map((arg) =>
    arg.replace(/^(--[^=]+=)(\/.*)$/, (_, flag: string, path: string) => flag + join(root, path)),
  );
}

export interface PemFiles {
  ca: string;
  cert: string;
  key: string;
}

/**
 * Makes the files the flags name exist under `root`, so that config validation (which reads
 * certificates and keys) can run: *-key flags get a key, *ca-cert a CA, other *cert a
 * certificate; the parent folder of every other path (a socket, a kubeconfig) is created.
 */
export function materialize(args: readonly string[], root: string, pem: PemFiles): void {
  for (const [flag, path] of pathFlags(args)) {
    const file = join(root, path);
    mkdirSync(dirname(file), { recursive: true });
    if (/(^|-)key$/.test(flag)) writeFileSync(file, pem.key);
    else if (/ca-cert$/.test(flag)) writeFileSync(file, pem.ca);
    else if (/cert$/.test(flag)) writeFileSync(file, pem.cert);
  }
}

const quiet = createLogger({ component: 'deploy-test', level: 'silent' });

/**
 * Runs the binary's flag parsing and configuration validation on args (paths already mapped
 * to files that exist). Returns the refusals, plus flags that are accepted only for upstream
 * compatibility (they do nothing: our manifests must not rely on them).
 */
export function commandLineProblems(binary: BinaryName, args: readonly string[]): string[] {
  const problems: string[] = [];
  try {
    const parsed = parseFlags(FLAG_TABLES[binary], args);
    problems.push(...parsed.warnings);
    if (binary === 'proxy-server') {
      serverConfigFromFlags(
        parsed.values as Parameters<typeof serverConfigFromFlags>[0],
        parsed.set,
        quiet,
        {},
      );
    } else if (binary === 'proxy-agent') {
      agentConfigFromFlags(parsed.values as Parameters<typeof agentConfigFromFlags>[0], quiet, {});
    } else {
      ccmConfigFromFlags(parsed.values as Parameters<typeof ccmConfigFromFlags>[0], quiet);
    }
  } catch (err) {
    problems.push((err as Error).message);
  }
  return problems;
}
