import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { filePolicyStore, PolicyError } from '../../src/policy/index.ts';
import { TEST_ENV, TEST_POLICY_YAML } from '../helpers/policy.ts';

describe('file policy store', () => {
  it('reloads a good file and keeps the old policy when the new one is bad', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'jitgate-store-')), 'policy.yml');
    writeFileSync(file, TEST_POLICY_YAML);
    const store = filePolicyStore(file, TEST_ENV);
    const seen: number[] = [];
    store.onChange((p) => seen.push(Object.keys(p.resources).length));
    expect(Object.keys(store.current().resources)).toEqual(['billing-api', 'admin-api']);

    writeFileSync(file, TEST_POLICY_YAML.replace(/ {2}admin-api:[\s\S]*$/, ''));
    expect(store.reload()).toEqual({ ok: true });
    expect(Object.keys(store.current().resources)).toEqual(['billing-api']);

    writeFileSync(file, 'resources: { broken: [ }');
    const failed = store.reload();
    expect(failed.ok).toBe(false);
    if (!failed.ok) expect(failed.error).toBeInstanceOf(PolicyError);
    expect(Object.keys(store.current().resources)).toEqual(['billing-api']);
    expect(seen).toEqual([1]);
  });

  it('refuses to start on a bad file', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'jitgate-store-')), 'policy.yml');
    writeFileSync(file, 'resources: {}');
    expect(() => filePolicyStore(file, {})).toThrow(PolicyError);
  });
});
