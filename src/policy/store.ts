import { loadPolicyFile } from './loader.ts';
import type { Policy } from './types.ts';

export interface PolicyStore {
  current(): Policy;
  /** Re-read the file; a bad new file keeps the old policy and returns the error. */
  reload(): { ok: true } | { ok: false; error: Error };
  onChange(listener: (policy: Policy) => void): () => void;
}

/** A store over a policy held in memory, for tests and the demo; `replace` stands in for a reload. */
export function staticPolicyStore(policy: Policy): PolicyStore & { replace(next: Policy): void } {
  let current = policy;
  const listeners = new Set<(policy: Policy) => void>();
  return {
    current: () => current,
    reload: () => ({ ok: true }),
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    replace(next) {
      current = next;
      for (const l of listeners) l(next);
    },
  };
}

/** Loads the file now (throwing a PolicyError that stops start-up) and on every reload. */
export function filePolicyStore(file: string, env: NodeJS.ProcessEnv): PolicyStore {
  let current = loadPolicyFile(file, env);
  const listeners = new Set<(policy: Policy) => void>();
  return {
    current: () => current,
    reload() {
      try {
        current = loadPolicyFile(file, env);
      } catch (error) {
        return { ok: false, error: error as Error };
      }
      for (const l of listeners) l(current);
      return { ok: true };
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
