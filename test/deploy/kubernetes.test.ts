import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IIoK8sApiCoreV1Container as Container } from 'kubernetes-models/v1/Container';
import type { IService } from 'kubernetes-models/v1/Service';
import { describe, expect, it } from 'vitest';
import { parsePolicy } from '../../src/policy/index.ts';
import { deploymentProblems } from './deployment-rules.ts';
import { describeObject, schemaProblems, unknownFields } from './kubernetes-schema.ts';
import { type KubeObject, renderKustomization } from './kustomize.ts';

const BASE = 'deploy/kubernetes/base';
const OVERLAY = 'deploy/kubernetes/overlays/example';
const ROLES = ['bot', 'proxy', 'worker'] as const;

const rendered = { base: renderKustomization(BASE), overlay: renderKustomization(OVERLAY) };

function find(objects: readonly KubeObject[], kind: string, name: string): KubeObject {
  const object = objects.find((o) => o.kind === kind && o.metadata.name.startsWith(name));
  if (!object) throw new Error(`${kind} ${name} is not rendered`);
  return object;
}

function deployment(objects: readonly KubeObject[], role: string): IDeployment & KubeObject {
  return find(objects, 'Deployment', `jitgate-${role}`) as IDeployment & KubeObject;
}

function container(objects: readonly KubeObject[], role: string, init = false): Container {
  const pod = deployment(objects, role).spec?.template.spec;
  const found = init ? pod?.initContainers?.[0] : pod?.containers[0];
  if (!found) throw new Error(`jitgate-${role} has no ${init ? 'init ' : ''}container`);
  return found;
}

/** The overlay's objects, changed by `mutate` on a copy: each rule must notice its own breach. */
function mutated(mutate: (objects: KubeObject[]) => void): KubeObject[] {
  const copy = structuredClone(rendered.overlay);
  mutate(copy);
  return copy;
}

/** What the rules say about the overlay once `mutate` has broken it. */
const problemsAfter = (mutate: (objects: KubeObject[]) => void) => deploymentProblems(mutated(mutate));

describe.each(Object.entries(rendered))('the %s renders', (_name, objects) => {
  it('Deployments for bot, proxy and worker, their Services, a PDB and an autoscaler for the proxy', () => {
    const names = objects.map(
      (o) =>
        `${o.kind} ${o.kind === 'ConfigMap' ? o.metadata.name.replace(/-[a-z0-9]{10}$/, '-<hash>') : o.metadata.name}`,
    );
    expect(names).toEqual(
      expect.arrayContaining([
        ...ROLES.flatMap((role) => [`Deployment jitgate-${role}`, `Service jitgate-${role}`]),
        'PodDisruptionBudget jitgate-proxy',
        'HorizontalPodAutoscaler jitgate-proxy',
        'ConfigMap jitgate-policy-<hash>',
        'ConfigMap jitgate-settings-<hash>',
        'NetworkPolicy jitgate-admin-from-monitoring',
        'ServiceAccount jitgate',
      ]),
    );
  });

  it('objects the Kubernetes schemas accept, with no field they do not know', () => {
    for (const object of objects) {
      expect(schemaProblems(object), describeObject(object)).toEqual([]);
      expect(unknownFields(object), describeObject(object)).toEqual([]);
    }
  });

  it('a deployment that keeps every rule (probes, non-root, resources, ports, network)', () => {
    expect(deploymentProblems(objects)).toEqual([]);
  });

  it('one image whose command is the role, each pod migrating first under the advisory lock', () => {
    const images = new Set<string | undefined>();
    for (const role of ROLES) {
      const app = container(objects, role);
      const migrate = container(objects, role, true);
      expect(app.args).toEqual([role]);
      expect(migrate.args).toEqual(['migrate']);
      images.add(app.image).add(migrate.image);
    }
    expect(images.size).toBe(1);
  });

  it('the policy from the generated ConfigMap, which jitgate loads, its variables from the Secret', () => {
    const configMap = find(objects, 'ConfigMap', 'jitgate-policy-');
    const text = (configMap.data as Record<string, string>)['policy.yml'] ?? '';
    const variables = [...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1] ?? '');
    expect(variables.length).toBeGreaterThan(0);
    const env = Object.fromEntries(variables.map((name) => [name, 'from-the-secret']));
    const policy = parsePolicy(text, { file: 'policy.yml', env });
    expect(Object.keys(policy.resources).length).toBeGreaterThan(0);

    for (const role of ROLES) {
      const pod = deployment(objects, role).spec?.template.spec;
      const app = container(objects, role);
      const mount = app.volumeMounts?.find((m) => m.name === 'policy');
      const volume = pod?.volumes?.find((v) => v.name === 'policy');
      expect(volume?.configMap?.name).toBe(configMap.metadata.name);
      expect(app.env?.find((e) => e.name === 'JITGATE_POLICY')?.value).toBe(`${mount?.mountPath}/policy.yml`);
      // Every role resolves the policy's credentials at start (src/policy/loader.ts).
      expect(app.envFrom).toContainEqual({ secretRef: { name: 'jitgate-upstream-credentials' } });
    }
  });

  it('secrets only as references to Secrets, never as values', () => {
    expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
    for (const role of ROLES) {
      for (const variable of container(objects, role).env ?? []) {
        if (/URL|TOKEN|SECRET|KEY/.test(variable.name) && variable.name !== 'JITGATE_PUBLIC_URL') {
          expect(variable.valueFrom?.secretKeyRef?.name, `${role} ${variable.name}`).toBe('jitgate');
        }
      }
    }
  });

  it('the admin listener on all interfaces for scraping, the probes on PORT', () => {
    for (const role of ROLES) {
      const app = container(objects, role);
      const env = Object.fromEntries((app.env ?? []).map((e) => [e.name, e.value]));
      expect(env.ADMIN_HOST).toBe('0.0.0.0');
      expect(app.ports?.find((p) => p.name === 'admin')?.containerPort).toBe(Number(env.ADMIN_PORT));
      expect(app.readinessProbe?.httpGet?.port).toBe('http');
      expect(app.livenessProbe?.httpGet?.port).toBe('http');
    }
  });
});

describe('the example overlay', () => {
  it('puts everything in its namespace and runs its own image', () => {
    for (const object of rendered.overlay) {
      if (object.kind !== 'Namespace')
        expect(object.metadata.namespace, describeObject(object)).toBe('jitgate');
    }
    expect(container(rendered.overlay, 'proxy').image).toBe('registry.example.com/jitgate:0.1.0');
  });

  it('rolls the pods when the policy changes: the pod templates name the policy by its hash', () => {
    const policyName = (objects: readonly KubeObject[]) =>
      find(objects, 'ConfigMap', 'jitgate-policy-').metadata.name;
    expect(policyName(rendered.overlay)).not.toBe(policyName(rendered.base));
    const template = (objects: readonly KubeObject[]) =>
      JSON.stringify(deployment(objects, 'proxy').spec?.template);
    expect(template(rendered.overlay)).toContain(policyName(rendered.overlay));
    expect(template(rendered.base)).toContain(policyName(rendered.base));
  });
});

describe('each rule notices when a rendered object breaks it', () => {
  it('a missing probe', () => {
    expect(
      problemsAfter((o) => {
        delete container(o, 'proxy').readinessProbe;
        delete container(o, 'worker').livenessProbe;
      }),
    ).toEqual([
      'Deployment jitgate/jitgate-proxy container proxy: has no readinessProbe',
      'Deployment jitgate/jitgate-worker container worker: has no livenessProbe',
    ]);
  });

  it('a probe on the wrong path or on a port the container does not expose', () => {
    expect(
      problemsAfter((o) => {
        const probe = container(o, 'bot').readinessProbe;
        if (probe?.httpGet) probe.httpGet.path = '/healthz';
        const liveness = container(o, 'proxy').livenessProbe;
        if (liveness?.httpGet) liveness.httpGet.port = 'metrics';
      }),
    ).toEqual([
      'Deployment jitgate/jitgate-bot container bot: readinessProbe does not GET /readyz',
      'Deployment jitgate/jitgate-proxy container proxy: livenessProbe targets port metrics, which the container does not expose',
    ]);
  });

  it('a root container', () => {
    expect(
      problemsAfter((o) => {
        const own = container(o, 'bot').securityContext;
        if (own) own.runAsUser = 0;
      }),
    ).toEqual(['Deployment jitgate/jitgate-bot container bot: may run as root']);
    const unchecked = mutated((o) => {
      const pod = deployment(o, 'worker').spec?.template.spec;
      if (pod?.securityContext) delete pod.securityContext.runAsNonRoot;
      delete container(o, 'worker').securityContext?.runAsNonRoot;
    });
    expect(deploymentProblems(unchecked)).toContain(
      'Deployment jitgate/jitgate-worker container worker: may run as root',
    );
  });

  it('an unknown field, wherever it is', () => {
    const objects = mutated((o) => {
      (container(o, 'proxy') as unknown as Record<string, unknown>).livenessprobe = {};
      const service = find(o, 'Service', 'jitgate-proxy') as IService & KubeObject;
      (service.spec as Record<string, unknown>).loadBalancerIp = '10.0.0.1';
    });
    expect(unknownFields(find(objects, 'Deployment', 'jitgate-proxy'))).toEqual([
      'spec.template.spec.containers[0].livenessprobe',
    ]);
    expect(unknownFields(find(objects, 'Service', 'jitgate-proxy'))).toEqual(['spec.loadBalancerIp']);
  });

  it('a value the schema refuses', () => {
    const objects = mutated((o) => {
      (deployment(o, 'bot').spec as unknown as Record<string, unknown>).replicas = 'two';
      const resources = container(o, 'worker').resources;
      if (resources?.requests) resources.requests.memory = 'lots';
    });
    expect(schemaProblems(find(objects, 'Deployment', 'jitgate-bot'))).toEqual([
      'Deployment jitgate/jitgate-bot: data/spec/replicas must be integer',
    ]);
    expect(schemaProblems(find(objects, 'Deployment', 'jitgate-worker'))[0]).toMatch(
      /memory must match format "quantity"/,
    );
  });

  it('a missing resource request or memory limit', () => {
    expect(
      problemsAfter((o) => {
        delete container(o, 'worker').resources?.requests?.memory;
        delete container(o, 'proxy', true).resources?.requests?.cpu;
        delete container(o, 'bot').resources?.limits?.memory;
      }),
    ).toEqual([
      'Deployment jitgate/jitgate-bot container bot: has no memory limit',
      'Deployment jitgate/jitgate-proxy container migrate: requests no cpu',
      'Deployment jitgate/jitgate-worker container worker: requests no memory',
    ]);
  });

  it('a container without the securityContext, or with part of it', () => {
    expect(
      problemsAfter((o) => {
        delete container(o, 'proxy', true).securityContext;
        const own = container(o, 'bot').securityContext;
        if (own) {
          own.allowPrivilegeEscalation = true;
          own.readOnlyRootFilesystem = false;
          own.capabilities = { drop: ['NET_RAW'], add: ['NET_ADMIN'] };
        }
      }),
    ).toEqual([
      'Deployment jitgate/jitgate-bot container bot: allows privilege escalation',
      'Deployment jitgate/jitgate-bot container bot: root filesystem is writable',
      'Deployment jitgate/jitgate-bot container bot: does not drop ALL capabilities',
      'Deployment jitgate/jitgate-bot container bot: adds capabilities',
      'Deployment jitgate/jitgate-proxy container migrate: has no securityContext',
    ]);
  });

  it('a Service port that is not a container port, and a Service that selects nothing', () => {
    expect(
      problemsAfter((o) => {
        const proxy = find(o, 'Service', 'jitgate-proxy') as IService & KubeObject;
        const port = proxy.spec?.ports?.[0];
        if (port) port.targetPort = 'proxi';
        const worker = find(o, 'Service', 'jitgate-worker') as IService & KubeObject;
        if (worker.spec) worker.spec.selector = { 'app.kubernetes.io/component': 'workers' };
        const bot = container(o, 'bot').ports?.find((p) => p.name === 'admin');
        if (bot) bot.containerPort = 9091;
      }),
    ).toEqual([
      'Deployment jitgate/jitgate-bot container bot: ADMIN_PORT=9090 but port admin is 9091',
      'Service jitgate/jitgate-proxy: port proxy targets proxi, not a port of Deployment jitgate/jitgate-proxy',
      'Service jitgate/jitgate-worker: selects no pods',
    ]);
  });

  it('the admin port open beyond the monitoring namespace', () => {
    expect(
      problemsAfter((o) => {
        const admin = find(o, 'NetworkPolicy', 'jitgate-admin-from-monitoring') as INetworkPolicy &
          KubeObject;
        admin.spec?.ingress?.[0]?.from?.push({ podSelector: {} });
        const proxy = find(o, 'NetworkPolicy', 'jitgate-proxy-from-clients') as INetworkPolicy & KubeObject;
        delete proxy.spec?.ingress?.[0]?.ports;
      }),
    ).toEqual([
      'NetworkPolicy jitgate/jitgate-admin-from-monitoring: ingress[0] admits the admin port from outside the monitoring namespace',
      'NetworkPolicy jitgate/jitgate-proxy-from-clients: ingress[0] admits the admin port from outside the monitoring namespace',
    ]);
    const unguarded = mutated((o) => {
      o.splice(0, o.length, ...o.filter((object) => object.kind !== 'NetworkPolicy'));
    });
    expect(deploymentProblems(unguarded)).toEqual(
      ROLES.map(
        (role) => `Deployment jitgate/jitgate-${role}: no NetworkPolicy restricts ingress to its pods`,
      ),
    );
  });

  it('replicas the autoscaler owns, a token mounted, a ConfigMap that is not rendered', () => {
    expect(
      problemsAfter((o) => {
        const proxy = deployment(o, 'proxy');
        if (proxy.spec) proxy.spec.replicas = 3;
        const pod = deployment(o, 'worker').spec?.template.spec;
        if (pod) pod.automountServiceAccountToken = true;
        const policy = pod?.volumes?.find((v) => v.name === 'policy');
        if (policy?.configMap) policy.configMap.name = 'jitgate-policy';
      }),
    ).toEqual([
      'Deployment jitgate/jitgate-worker: mounts a service account token',
      'Deployment jitgate/jitgate-worker: refers to ConfigMap jitgate-policy, which is not rendered',
      'Deployment jitgate/jitgate-proxy: sets replicas, which its autoscaler owns',
    ]);
  });

  it('a read-only root without a writable /tmp', () => {
    expect(
      problemsAfter((o) => {
        const app = container(o, 'proxy');
        app.volumeMounts = app.volumeMounts?.filter((m) => m.mountPath !== '/tmp');
      }),
    ).toEqual(['Deployment jitgate/jitgate-proxy container proxy: has no writable emptyDir at /tmp']);
  });
});
