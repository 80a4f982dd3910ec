// From a CDI resource to the objects CDI consists of: one pure function, so that the same render is applied by the
// operator, written into deploy/cdi/ for review (npm run gen) and compared by the snapshot tests. The parts that
// depend on the cluster (whether a PriorityClass or the Prometheus CRDs exist, the CA bundles) come in as facts;
// owner references and version labels are added when the objects are applied (apply.ts).
//
// The components, in the order they are applied (a new kind is one more entry):
//   crds           every CDI CRD except cdis.cdi.kubevirt.io (that one comes with cdi-operator.yaml)
//   controller     cdi-sa, ClusterRole cdi, Role cdi-deployment, Deployment cdi-deployment, cdi-prometheus-metrics
//   apiserver      cdi-apiserver (ServiceAccount, roles, Deployment), Service cdi-api
//   uploadproxy    cdi-uploadproxy (ServiceAccount, roles, Deployment, Service)
//   registrations  APIService v1beta1.upload.cdi.kubevirt.io and the webhook configurations (deploy/webhooks.ts),
//                  with cdi-apiserver's CA bundle, once it exists
//   user-roles     cdi.kubevirt.io:admin|edit|view|clone-sourcer|config-reader
//   config         ConfigMaps cdi-config and cdi-insecure-registries
//   network        the cdi-allow-* NetworkPolicies
//   monitoring     PrometheusRule and ServiceMonitor, when their CRDs are served
import YAML from 'yaml';
import { crds } from '../api/crds.ts';
import type { CDI } from '../api/index.ts';
import { type ComponentOptions, type Obj, type Placement } from '../deploy/common.ts';
import { controllerManifests } from '../deploy/controller.ts';
import {
  apiServerManifests,
  uploadApiService,
  uploadProxyManifests,
  type UploadDeployOptions,
} from '../deploy/upload.ts';
import { webhookConfigurations } from '../deploy/webhooks.ts';
import { userClusterRoles } from '../deploy/rbac.ts';
import { labelsOf } from '../deploy/common.ts';
import type { OperatorConfig } from './config.ts';
import { applyCustomizations } from './customize.ts';
import { configMaps, networkPolicies } from './extras.ts';
import { monitoringManifests } from './monitoring.ts';

/** What deploy/cdi/ shows in place of cdi-apiserver's CA bundle (the operator writes the real one). */
export const BundlePlaceholder = '<the PEM of ConfigMap cdi-apiserver-signer-bundle, key ca-bundle.crt>\n';

/** upstream utils.CDIPriorityClass: used when the CDI resource names none and it exists. */
export const DefaultPriorityClass = 'kubevirt-cluster-critical';

/** What the render needs to know about the cluster. */
export interface ClusterFacts {
  /** The PriorityClasses that exist, of those the CDI resource may name (spec.priorityClass, the default). */
  priorityClasses: ReadonlySet<string>;
  /** prometheusrules and servicemonitors.monitoring.coreos.com are served */
  monitoring: boolean;
  /**
   * cdi-apiserver's CA bundle (PEM), once it exists and the webhooks may be registered (cdi-apiserver serves, or
   * they are registered already): the APIService and the webhook configurations are rendered with it.
   */
  apiServerBundle?: string;
}

export interface RenderInput {
  cr: CDI;
  config: OperatorConfig;
  facts: ClusterFacts;
}

export interface Component {
  name: string;
  render(input: RenderInput, o: ComponentOptions): Obj[];
}

const placement = (
  p: { nodeSelector?: unknown; affinity?: unknown; tolerations?: unknown } | undefined,
): Placement => ({
  ...(p?.nodeSelector ? { nodeSelector: p.nodeSelector as Record<string, string> } : {}),
  ...(p?.affinity ? { affinity: p.affinity as Obj } : {}),
  ...(p?.tolerations ? { tolerations: p.tolerations as Obj[] } : {}),
});

/** The settings every component takes from the CDI resource, with the operator's defaults. */
export function componentOptions(input: RenderInput): ComponentOptions {
  const { cr, config, facts } = input;
  const spec = cr.spec ?? {};
  const wanted = spec.priorityClass || DefaultPriorityClass;
  const secrets = (spec.config?.imagePullSecrets ?? []).map((s) => s.name).filter((n): n is string => !!n);
  return {
    namespace: config.namespace,
    pullPolicy: spec.imagePullPolicy ?? config.pullPolicy,
    verbosity: spec.config?.logVerbosity !== undefined ? String(spec.config.logVerbosity) : config.verbosity,
    // upstream: a class that does not exist is left out rather than leave the pods unschedulable
    ...(facts.priorityClasses.has(wanted) ? { priorityClassName: wanted } : {}),
    ...(secrets.length ? { imagePullSecrets: secrets } : {}),
    infra: placement(spec.infra),
  };
}

function uploadOptions({ cr, config }: RenderInput, o: ComponentOptions): UploadDeployOptions {
  return {
    ...o,
    apiServerImage: config.images.apiServer,
    uploadProxyImage: config.images.uploadProxy,
    apiServerReplicas: Math.max(1, cr.spec?.infra?.apiServerReplicas ?? 1),
    uploadProxyReplicas: Math.max(1, cr.spec?.infra?.uploadProxyReplicas ?? 1),
  };
}

export const components: readonly Component[] = [
  {
    name: 'crds',
    render: () => crds().filter((c) => (c['metadata'] as Obj)['name'] !== 'cdis.cdi.kubevirt.io'),
  },
  {
    name: 'controller',
    render: ({ cr, config }, o) =>
      controllerManifests({
        ...o,
        controllerImage: config.images.controller,
        importerImage: config.images.importer,
        uploadServerImage: config.images.uploadServer,
        replicas: Math.max(1, cr.spec?.infra?.deploymentReplicas ?? 1),
        workload: placement(cr.spec?.workload),
        ...(config.controllerEnv ? { controllerEnv: config.controllerEnv } : {}),
      }),
  },
  { name: 'user-roles', render: () => userClusterRoles(labelsOf()) },
  { name: 'apiserver', render: (i, o) => apiServerManifests(uploadOptions(i, o)) },
  { name: 'uploadproxy', render: (i, o) => uploadProxyManifests(uploadOptions(i, o)) },
  {
    name: 'registrations',
    render: ({ cr, facts }, o) =>
      facts.apiServerBundle
        ? [
            uploadApiService(o.namespace, facts.apiServerBundle),
            ...webhookConfigurations(o.namespace, facts.apiServerBundle, cr.spec?.config),
          ]
        : [],
  },
  { name: 'config', render: (_i, o) => configMaps(o.namespace) },
  { name: 'network', render: (_i, o) => networkPolicies(o.namespace) },
  {
    name: 'monitoring',
    render: ({ facts }, o) => (facts.monitoring ? monitoringManifests(o.namespace) : []),
  },
];

/** Every object the CDI resource asks for, customized (spec.customizeComponents), in the order to apply them. */
export function renderAll(input: RenderInput): Obj[] {
  const o = componentOptions(input);
  const objects = components.flatMap((c) => c.render(input, o));
  applyCustomizations(objects, input.cr.spec?.customizeComponents);
  return objects;
}

const header =
  '# What the operator installs from deploy/release/cdi-cr.yaml (for review; the operator applies it, not kubectl).\n' +
  '# Generated by hack/gen-manifests.ts from src/operator/render.ts; do not edit (npm run gen).\n';

/**
 * deploy/cdi/<file> → YAML text: one file per component (the CRDs are in deploy/crds), rendered for `input` without
 * the owner references and version labels the operator adds when it applies them.
 */
export function renderDeployFiles(input: RenderInput): Record<string, string> {
  const o = componentOptions(input);
  const files: Record<string, string> = {};
  components.forEach((c, i) => {
    if (c.name === 'crds') return;
    const objs = c.render(input, o);
    if (objs.length === 0) return;
    applyCustomizations(objs, input.cr.spec?.customizeComponents);
    files[`${String(i * 10).padStart(2, '0')}-${c.name}.yaml`] =
      header +
      objs.map((x) => YAML.stringify(x, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n');
  });
  return files;
}
