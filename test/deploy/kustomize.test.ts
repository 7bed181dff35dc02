import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { configMapHash, type KubeObject, KustomizeError, renderKustomization } from './kustomize.ts';

const FIXTURE = 'test/deploy/fixtures/edge';
const DEPLOYMENTS = ['deploy/kubernetes/base', 'deploy/kubernetes/overlays/example'];

const byName = (objects: readonly KubeObject[], kind: string, prefix: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name.startsWith(prefix));

const scratch: string[] = [];
afterEach(() => {
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A throw-away kustomization: files by name, kustomization.yaml among them. */
function kustomization(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'jitgate-kustomize-'));
  scratch.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const CONFIG_MAP_ONLY = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: plain }\ndata: { a: b }\n';

describe('the kustomize renderer', () => {
  it('names generated ConfigMaps with the suffix kustomize gives them, and rewrites every reference', () => {
    // Suffixes as `kubectl kustomize` (kustomize v5.5.0) printed them for this fixture.
    const base = renderKustomization(`${FIXTURE}/base`);
    const over = renderKustomization(`${FIXTURE}/over`);
    expect(byName(base, 'ConfigMap', 'edge-')?.metadata.name).toBe('edge-bmt8d88tf4');
    expect(byName(over, 'ConfigMap', 'edge-')?.metadata.name).toBe('edge-9kd4kkcgf8');

    const app = byName(over, 'Deployment', 'app');
    const text = JSON.stringify(app);
    expect(text.match(/edge-9kd4kkcgf8/g)).toHaveLength(4); // volume, projection, envFrom, keyRef
    expect(text).not.toMatch(/"edge"/);
    expect(app?.metadata.namespace).toBe('edge-ns');
    expect(app?.spec).toMatchObject({ replicas: 3 });
  });

  it('sets tags, names and digests as kustomize does, registry ports included', () => {
    const app = byName(renderKustomization(`${FIXTURE}/over`), 'Deployment', 'app');
    const pod = (
      app as unknown as {
        spec: {
          template: { spec: { containers: { image: string }[]; initContainers: { image: string }[] } };
        };
      }
    ).spec.template.spec;
    expect(pod.initContainers[0]?.image).toBe('registry.local:5000/team/app:2.0');
    expect(pod.containers[0]?.image).toBe(`mirror.local/app@sha256:${'0'.repeat(64)}`);
  });

  it('gives the same suffix whatever the order of the keys, always ten characters kustomize allows', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1 }), fc.string()), (data) => {
        const reversed = Object.fromEntries(Object.entries(data).reverse());
        const hash = configMapHash(data);
        expect(configMapHash(reversed)).toBe(hash);
        expect(hash).toMatch(/^[2-9bcdf-z]{10}$/);
      }),
    );
  });

  it('refuses what it does not implement instead of skipping it', () => {
    const dir = kustomization({
      'kustomization.yaml': 'resources: [cm.yaml]\ncommonLabels: { team: a }\n',
      'cm.yaml': CONFIG_MAP_ONLY,
    });
    expect(() => renderKustomization(dir)).toThrow(/"commonLabels" is not supported/);

    const strategic = kustomization({
      'kustomization.yaml':
        'resources: [cm.yaml]\npatches:\n  - target: { kind: ConfigMap }\n    patch: |-\n      data: { a: c }\n',
      'cm.yaml': CONFIG_MAP_ONLY,
    });
    expect(() => renderKustomization(strategic)).toThrow(/only JSON 6902 patches/);

    const option = kustomization({
      'kustomization.yaml':
        'configMapGenerator:\n  - name: x\n    literals: [a=b]\n    options: { disableNameSuffixHash: true }\n',
    });
    expect(() => renderKustomization(option)).toThrow(KustomizeError);
  });

  it('refuses a second generator of one name, a merge with nothing, and a patch that matches nothing', () => {
    const twice = kustomization({
      'kustomization.yaml':
        'configMapGenerator:\n  - { name: x, literals: [a=b] }\n  - { name: x, literals: [c=d] }\n',
    });
    expect(() => renderKustomization(twice)).toThrow(/x already exists/);
    const lonely = kustomization({
      'kustomization.yaml': 'configMapGenerator:\n  - { name: x, behavior: merge, literals: [a=b] }\n',
    });
    expect(() => renderKustomization(lonely)).toThrow(/no x to merge/);
    const typo = kustomization({
      'kustomization.yaml':
        'resources: [cm.yaml]\npatches:\n  - target: { kind: ConfigMap, name: plian }\n    patch: |-\n      - { op: remove, path: /data }\n',
      'cm.yaml': CONFIG_MAP_ONLY,
    });
    expect(() => renderKustomization(typo)).toThrow(/matches no object/);
  });
});

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;

function kubectlKustomize(dir: string): KubeObject[] {
  const result = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 60_000 });
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${result.stderr}`);
  return parseAllDocuments(result.stdout).map((document) => document.toJS() as KubeObject);
}

const key = (o: KubeObject) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const keyed = (objects: readonly KubeObject[]) => new Map(objects.map((o) => [key(o), o]));

// Runs wherever kubectl is installed (this machine image and CI have it): the renderer and
// real kustomize must agree on every object, field for field; the order of objects may differ.
describe.runIf(kubectl)('the renderer against kubectl kustomize', () => {
  it.each([...DEPLOYMENTS, `${FIXTURE}/base`, `${FIXTURE}/over`])('renders %s as kustomize does', (dir) => {
    const ours = keyed(renderKustomization(dir));
    const theirs = keyed(kubectlKustomize(dir));
    expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
    for (const [name, object] of ours) expect(object, name).toEqual(theirs.get(name));
  });
});
