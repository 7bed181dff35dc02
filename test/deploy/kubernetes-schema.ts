import { isDeepStrictEqual } from 'node:util';
import { ObjectSerializer } from '@kubernetes/client-node/dist/serializer.js';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { isRecord } from '../../src/shared/is-record.ts';
import type { KubeObject } from './kustomize.ts';

/**
 * Two libraries, each for what it does: kubernetes-models validates an object against the
 * Kubernetes OpenAPI schema (types, required fields, formats such as quantities), but its
 * schemas allow any extra key; the official client's serializer knows every field of every
 * type and drops the ones it does not know, so a field it drops is a field the API server
 * would reject (strict decoding) or ignore.
 */

interface Validating {
  validate(): void;
}

/** Every kind the deployment may hold. A kind missing here fails validation rather than skip it. */
const MODELS: Readonly<Record<string, (object: KubeObject) => Validating>> = {
  'v1/Namespace': (o) => new Namespace(o as unknown as ConstructorParameters<typeof Namespace>[0]),
  'v1/ServiceAccount': (o) =>
    new ServiceAccount(o as unknown as ConstructorParameters<typeof ServiceAccount>[0]),
  'v1/ConfigMap': (o) => new ConfigMap(o as unknown as ConstructorParameters<typeof ConfigMap>[0]),
  'v1/Secret': (o) => new Secret(o as unknown as ConstructorParameters<typeof Secret>[0]),
  'v1/Service': (o) => new Service(o as unknown as ConstructorParameters<typeof Service>[0]),
  'apps/v1/Deployment': (o) => new Deployment(o as unknown as ConstructorParameters<typeof Deployment>[0]),
  'batch/v1/Job': (o) => new Job(o as unknown as ConstructorParameters<typeof Job>[0]),
  'policy/v1/PodDisruptionBudget': (o) =>
    new PodDisruptionBudget(o as unknown as ConstructorParameters<typeof PodDisruptionBudget>[0]),
  'autoscaling/v2/HorizontalPodAutoscaler': (o) =>
    new HorizontalPodAutoscaler(o as unknown as ConstructorParameters<typeof HorizontalPodAutoscaler>[0]),
  'networking.k8s.io/v1/NetworkPolicy': (o) =>
    new NetworkPolicy(o as unknown as ConstructorParameters<typeof NetworkPolicy>[0]),
};

export function describeObject(object: KubeObject): string {
  const namespace = object.metadata.namespace ? `${object.metadata.namespace}/` : '';
  return `${object.kind} ${namespace}${object.metadata.name}`;
}

/** Schema problems of one object, as `Deployment ns/name: data/spec/replicas must be integer`. */
export function schemaProblems(object: KubeObject): string[] {
  const model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (!model) return [`${describeObject(object)}: no schema for ${object.apiVersion} ${object.kind}`];
  try {
    model(object).validate();
    return [];
  } catch (error) {
    return [`${describeObject(object)}: ${error instanceof Error ? error.message : String(error)}`];
  }
}

/** `apps/v1` + `Deployment` → `V1Deployment`, the client's name for the type. */
function clientTypeName(object: KubeObject): string {
  const version = object.apiVersion.split('/').pop() ?? object.apiVersion;
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${object.kind}`;
}

/** Paths present in `written` that `kept` lost: the fields the type does not have. */
function droppedPaths(written: unknown, kept: unknown, path: string): string[] {
  if (Array.isArray(written)) {
    if (!Array.isArray(kept)) return [path];
    return written.flatMap((item, index) => droppedPaths(item, kept[index], `${path}[${index}]`));
  }
  if (!isRecord(written)) return [];
  if (!isRecord(kept)) return [path];
  return Object.entries(written).flatMap(([key, value]) =>
    key in kept
      ? droppedPaths(value, kept[key], path ? `${path}.${key}` : key)
      : [path ? `${path}.${key}` : key],
  );
}

/** Fields no Kubernetes type of this object has, as `spec.template.spec.containers[0].bogus`. */
export function unknownFields(object: KubeObject): string[] {
  const type = clientTypeName(object);
  const typed: unknown = ObjectSerializer.deserialize(structuredClone(object), type);
  // The serializer hands back what it was given when it has no such type.
  if (!isRecord(typed) || typed.constructor === Object) {
    return [`(the client has no type ${type} for ${object.apiVersion} ${object.kind})`];
  }
  const kept: unknown = JSON.parse(JSON.stringify(ObjectSerializer.serialize(typed, type)));
  if (isDeepStrictEqual(kept, object)) return [];
  return droppedPaths(object, kept, '');
}
