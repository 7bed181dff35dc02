import { isDeepStrictEqual } from 'node:util';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import type { IIoK8sApiCoreV1Container as Container } from 'kubernetes-models/v1/Container';
import type { IIoK8sApiCoreV1PodSpec as PodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IIoK8sApiCoreV1Probe as Probe } from 'kubernetes-models/v1/Probe';
import type { IService } from 'kubernetes-models/v1/Service';
import { describeObject } from './kubernetes-schema.ts';
import type { KubeObject } from './kustomize.ts';

/**
 * What jitgate's deployment promises beyond what the schema can say: each rule returns one
 * line per object or container that breaks it, naming the object, the container and the rule.
 * Run on schema-valid objects (kubernetes-schema.ts first), so the typed views below hold.
 */

type Labels = Readonly<Record<string, string>>;

interface Workload {
  object: KubeObject;
  labels: Labels;
  pod: PodSpec;
}

function workloads(objects: readonly KubeObject[]): Workload[] {
  return objects.flatMap((object) => {
    if (object.kind !== 'Deployment' && object.kind !== 'Job') return [];
    const template = (object as unknown as IDeployment).spec?.template;
    if (!template?.spec) return [];
    return [{ object, labels: template.metadata?.labels ?? {}, pod: template.spec }];
  });
}

function selects(selector: Labels | undefined, labels: Labels): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

function sameNamespace(a: KubeObject, b: KubeObject): boolean {
  return (a.metadata.namespace ?? '') === (b.metadata.namespace ?? '');
}

function containerRules(workload: Workload, container: Container, isInit: boolean): string[] {
  const where = `${describeObject(workload.object)} container ${container.name}`;
  const pod = workload.pod.securityContext ?? {};
  const own = container.securityContext;
  const problems: string[] = [];
  if (!own) {
    problems.push(`${where}: has no securityContext`);
  } else {
    if (own.allowPrivilegeEscalation !== false) problems.push(`${where}: allows privilege escalation`);
    if (own.readOnlyRootFilesystem !== true) problems.push(`${where}: root filesystem is writable`);
    if (!own.capabilities?.drop?.includes('ALL')) problems.push(`${where}: does not drop ALL capabilities`);
    if ((own.capabilities?.add ?? []).length > 0) problems.push(`${where}: adds capabilities`);
    if (own.privileged === true) problems.push(`${where}: is privileged`);
  }
  const runAsNonRoot = own?.runAsNonRoot ?? pod.runAsNonRoot;
  const runAsUser = own?.runAsUser ?? pod.runAsUser;
  if (runAsNonRoot !== true || runAsUser === 0) problems.push(`${where}: may run as root`);
  const seccomp = own?.seccompProfile?.type ?? pod.seccompProfile?.type;
  if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') {
    problems.push(`${where}: has no seccomp profile (RuntimeDefault)`);
  }

  const requests = container.resources?.requests ?? {};
  for (const resource of ['cpu', 'memory']) {
    if (requests[resource] === undefined) problems.push(`${where}: requests no ${resource}`);
  }
  if (container.resources?.limits?.memory === undefined) problems.push(`${where}: has no memory limit`);

  // tsx writes its compile cache under /tmp, the one writable place on a read-only root.
  const tmp = container.volumeMounts?.find((mount) => mount.mountPath === '/tmp');
  const tmpVolume = workload.pod.volumes?.find((volume) => volume.name === tmp?.name);
  if (!tmp || !tmpVolume?.emptyDir || tmp.readOnly === true) {
    problems.push(`${where}: has no writable emptyDir at /tmp`);
  }

  if (!isInit) {
    problems.push(...probeRules(where, container, 'livenessProbe', '/healthz'));
    problems.push(...probeRules(where, container, 'readinessProbe', '/readyz'));
    problems.push(...portEnvironmentRules(where, container));
  }
  return problems;
}

function probeRules(
  where: string,
  container: Container,
  kind: 'livenessProbe' | 'readinessProbe',
  path: string,
): string[] {
  const probe: Probe | undefined = container[kind];
  if (!probe) return [`${where}: has no ${kind}`];
  if (probe.httpGet?.path !== path) return [`${where}: ${kind} does not GET ${path}`];
  const port = probe.httpGet.port;
  const exists = (container.ports ?? []).some((p) => p.name === port || p.containerPort === port);
  return exists
    ? []
    : [`${where}: ${kind} targets port ${String(port)}, which the container does not expose`];
}

/** The port a variable configures is the one the container declares under that name. */
const PORT_VARIABLES: Readonly<Record<string, string>> = {
  PORT: 'http',
  PROXY_PORT: 'proxy',
  ADMIN_PORT: 'admin',
};

function portEnvironmentRules(where: string, container: Container): string[] {
  return Object.entries(PORT_VARIABLES).flatMap(([variable, portName]) => {
    const value = container.env?.find((e) => e.name === variable)?.value;
    const declared = container.ports?.find((p) => p.name === portName);
    if (value === undefined && declared === undefined) return [];
    if (value === undefined || declared === undefined || Number(value) !== declared.containerPort) {
      return [
        `${where}: ${variable}=${value ?? '(unset)'} but port ${portName} is ${declared?.containerPort ?? '(absent)'}`,
      ];
    }
    return [];
  });
}

function workloadRules(workload: Workload, objects: readonly KubeObject[]): string[] {
  const where = describeObject(workload.object);
  const problems: string[] = [];
  if (workload.pod.automountServiceAccountToken !== false) {
    problems.push(`${where}: mounts a service account token`);
  }
  for (const container of workload.pod.initContainers ?? []) {
    problems.push(...containerRules(workload, container, true));
  }
  for (const container of workload.pod.containers) {
    problems.push(...containerRules(workload, container, false));
  }
  const configMaps = new Set(
    objects
      .filter((o) => o.kind === 'ConfigMap' && sameNamespace(o, workload.object))
      .map((o) => o.metadata.name),
  );
  const referenced = [
    ...(workload.pod.volumes ?? []).flatMap((v) => (v.configMap?.name ? [v.configMap.name] : [])),
    ...[...(workload.pod.initContainers ?? []), ...workload.pod.containers].flatMap((c) =>
      (c.envFrom ?? []).flatMap((e) => (e.configMapRef?.name ? [e.configMapRef.name] : [])),
    ),
  ];
  for (const name of referenced) {
    if (!configMaps.has(name)) problems.push(`${where}: refers to ConfigMap ${name}, which is not rendered`);
  }
  return problems;
}

function serviceRules(service: IService & KubeObject, all: readonly Workload[]): string[] {
  const where = describeObject(service);
  const selected = all.filter(
    (w) => sameNamespace(w.object, service) && selects(service.spec?.selector, w.labels),
  );
  if (selected.length === 0) return [`${where}: selects no pods`];
  return (service.spec?.ports ?? []).flatMap((port) => {
    const target = port.targetPort ?? port.port;
    const protocol = port.protocol ?? 'TCP';
    return selected.flatMap((workload) => {
      const declared = workload.pod.containers
        .flatMap((c) => c.ports ?? [])
        .find((p) => (typeof target === 'string' ? p.name === target : p.containerPort === target));
      if (!declared) {
        return [
          `${where}: port ${port.name ?? port.port} targets ${target}, not a port of ${describeObject(workload.object)}`,
        ];
      }
      if ((declared.protocol ?? 'TCP') !== protocol) {
        return [
          `${where}: port ${port.name ?? port.port} is ${protocol} but ${declared.name} is ${declared.protocol}`,
        ];
      }
      return [];
    });
  });
}

/** The label a namespace carries when its scrapers may read /metrics (README "Running in production"). */
const MONITORING_NAMESPACE_LABELS: Labels = { 'jitgate-metrics-scraper': 'true' };

/** The metrics port is open only to the monitoring namespace, and a policy applies to every pod with one. */
function adminPortRules(
  policies: readonly (INetworkPolicy & KubeObject)[],
  all: readonly Workload[],
): string[] {
  const problems: string[] = [];
  for (const policy of policies) {
    const where = describeObject(policy);
    for (const [index, rule] of (policy.spec?.ingress ?? []).entries()) {
      const admitsAdmin =
        rule.ports === undefined || rule.ports.some((p) => p.port === 'admin' || p.port === 9090);
      if (!admitsAdmin) continue;
      const peers = rule.from ?? [];
      const onlyMonitoring =
        peers.length > 0 &&
        peers.every(
          (peer) =>
            peer.ipBlock === undefined &&
            peer.podSelector === undefined &&
            peer.namespaceSelector?.matchExpressions === undefined &&
            isDeepStrictEqual(peer.namespaceSelector?.matchLabels, MONITORING_NAMESPACE_LABELS),
        );
      if (!onlyMonitoring) {
        problems.push(
          `${where}: ingress[${index}] admits the admin port from outside the monitoring namespace`,
        );
      }
    }
  }
  for (const workload of all) {
    const hasAdmin = workload.pod.containers.some((c) => (c.ports ?? []).some((p) => p.name === 'admin'));
    const covered = policies.some(
      (p) =>
        sameNamespace(p, workload.object) &&
        (p.spec?.policyTypes ?? ['Ingress']).includes('Ingress') &&
        selects(p.spec?.podSelector.matchLabels, workload.labels),
    );
    if (hasAdmin && !covered) {
      problems.push(`${describeObject(workload.object)}: no NetworkPolicy restricts ingress to its pods`);
    }
  }
  return problems;
}

function scalingRules(objects: readonly KubeObject[], all: readonly Workload[]): string[] {
  const problems: string[] = [];
  for (const object of objects) {
    if (object.kind === 'HorizontalPodAutoscaler') {
      const target = (object as unknown as IHorizontalPodAutoscaler).spec?.scaleTargetRef;
      const scaled = all.find(
        (w) =>
          sameNamespace(w.object, object) &&
          w.object.kind === target?.kind &&
          w.object.metadata.name === target?.name,
      );
      if (!scaled)
        problems.push(`${describeObject(object)}: scales ${target?.kind} ${target?.name}, not rendered`);
      else if ((scaled.object as unknown as IDeployment).spec?.replicas !== undefined) {
        problems.push(`${describeObject(scaled.object)}: sets replicas, which its autoscaler owns`);
      }
    }
    if (object.kind === 'PodDisruptionBudget') {
      const selector = (object as unknown as IPodDisruptionBudget).spec?.selector?.matchLabels;
      if (!all.some((w) => sameNamespace(w.object, object) && selects(selector, w.labels))) {
        problems.push(`${describeObject(object)}: selects no pods`);
      }
    }
  }
  return problems;
}

/** Every rule over every object; empty when the deployment keeps its promises. */
export function deploymentProblems(objects: readonly KubeObject[]): string[] {
  const all = workloads(objects);
  const services = objects.filter((o) => o.kind === 'Service') as (IService & KubeObject)[];
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy') as (INetworkPolicy & KubeObject)[];
  return [
    ...all.flatMap((w) => workloadRules(w, objects)),
    ...services.flatMap((s) => serviceRules(s, all)),
    ...adminPortRules(policies, all),
    ...scalingRules(objects, all),
  ];
}
