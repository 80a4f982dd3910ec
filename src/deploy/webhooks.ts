// The admission webhooks cdi-apiserver serves and how they are registered (upstream pkg/operator/resources/cluster
// apiserver.go, callbacks.go initPvcMutatingWebhook): one entry per webhook, with upstream's configuration and webhook
// names, paths, rules, failure policies and timeouts. The operator renders a (Validating|Mutating)WebhookConfiguration
// for each entry once cdi-apiserver's CA bundle exists; cdi-apiserver serves each `path` (src/apiserver/webhooks).
// A new webhook is one entry here and one handler file there (a test checks that every path has a handler).
// Ours beside upstream's: pvc-clone-mutate (the older k8s.io/CloneRequest PVC API, secured; docs/clone.md), which
// selects its PVCs with a matchCondition so that only PVCs asking for a clone depend on cdi-apiserver being up.
import { Label } from '../api/constants.ts';
import type { Obj } from './common.ts';
import { labelsOf } from './common.ts';

export interface WebhookRegistration {
  /** the (Validating|Mutating)WebhookConfiguration's name */
  configuration: string;
  type: 'Validating' | 'Mutating';
  /** the webhook's name in the configuration */
  name: string;
  path: string;
  rules: Obj[];
  failurePolicy: 'Fail' | 'Ignore';
  timeoutSeconds: number;
  objectSelector?: Obj;
  /** CEL matchConditions (GA since Kubernetes 1.30): only the objects they select depend on cdi-apiserver */
  matchConditions?: Obj[];
  /** AdmissionReview versions (default upstream's v1, v1beta1) */
  reviewVersions?: string[];
  /** Whether it is registered, from CDI.spec.config (CDIConfig's spec); always when absent. */
  enabled?: (config: { webhookPvcRendering?: string } | undefined) => boolean;
}

const cdiRule = (resources: string[], operations: string[]): Obj => ({
  operations,
  apiGroups: ['cdi.kubevirt.io'],
  apiVersions: ['v1beta1'],
  resources,
  scope: '*',
});

export const WebhookRegistrations: readonly WebhookRegistration[] = [
  {
    configuration: 'cdi-api-datavolume-validate',
    type: 'Validating',
    name: 'datavolume-validate.cdi.kubevirt.io',
    path: '/datavolume-validate',
    rules: [cdiRule(['datavolumes'], ['CREATE', 'UPDATE'])],
    failurePolicy: 'Fail',
    timeoutSeconds: 30,
  },
  {
    configuration: 'cdi-api-validate',
    type: 'Validating',
    name: 'cdi-validate.cdi.kubevirt.io',
    path: '/cdi-validate',
    rules: [cdiRule(['cdis'], ['DELETE'])],
    // as upstream: without cdi-apiserver a CDI resource can still be removed
    failurePolicy: 'Ignore',
    timeoutSeconds: 30,
  },
  {
    configuration: 'cdi-api-dataimportcron-validate',
    type: 'Validating',
    name: 'dataimportcron-validate.cdi.kubevirt.io',
    path: '/dataimportcron-validate',
    rules: [cdiRule(['dataimportcrons'], ['CREATE', 'UPDATE'])],
    failurePolicy: 'Fail',
    timeoutSeconds: 30,
  },
  {
    configuration: 'cdi-api-populator-validate',
    type: 'Validating',
    name: 'populator-validate.cdi.kubevirt.io',
    path: '/populator-validate',
    rules: [cdiRule(['volumeimportsources', 'volumeuploadsources'], ['CREATE', 'UPDATE'])],
    failurePolicy: 'Fail',
    timeoutSeconds: 30,
  },
  {
    // upstream's name breaks the cdi-api- pattern of the others (pkg/operator/resources/cluster/apiserver.go)
    configuration: 'objecttransfer-api-validate',
    type: 'Validating',
    name: 'objecttransfer-validate.cdi.kubevirt.io',
    path: '/objecttransfer-validate',
    rules: [cdiRule(['objecttransfers'], ['CREATE', 'UPDATE'])],
    failurePolicy: 'Fail',
    timeoutSeconds: 30,
  },
  {
    configuration: 'cdi-api-datavolume-mutate',
    type: 'Mutating',
    name: 'datavolume-mutate.cdi.kubevirt.io',
    path: '/datavolume-mutate',
    rules: [cdiRule(['datavolumes'], ['CREATE', 'UPDATE'])],
    failurePolicy: 'Fail',
    timeoutSeconds: 30,
  },
  {
    configuration: 'cdi-api-pvc-clone-mutate',
    type: 'Mutating',
    name: 'pvc-clone-mutate.cdi.kubevirt.io',
    path: '/pvc-clone-mutate',
    rules: [
      {
        operations: ['CREATE', 'UPDATE'],
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['persistentvolumeclaims'],
        scope: '*',
      },
    ],
    failurePolicy: 'Fail',
    timeoutSeconds: 30,
    matchConditions: [
      {
        name: 'clone-request',
        expression: "has(object.metadata.annotations) && 'k8s.io/CloneRequest' in object.metadata.annotations",
      },
    ],
  },
  {
    configuration: 'cdi-api-pvc-mutate',
    type: 'Mutating',
    name: 'pvc-mutate.cdi.kubevirt.io',
    path: '/pvc-mutate',
    rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['persistentvolumeclaims'], scope: '*' }],
    failurePolicy: 'Fail',
    timeoutSeconds: 10,
    objectSelector: { matchLabels: { [Label.ApplyStorageProfile]: 'true' } },
    reviewVersions: ['v1'],
    // upstream IsWebhookPvcRenderingEnabled: on unless CDIConfig says Disabled
    enabled: (config) => config?.webhookPvcRendering !== 'Disabled',
  },
];

/** How tests register the webhooks of a cdi-apiserver they run themselves (the operator's are the Service's). */
export interface WebhookTarget {
  /** The clientConfig for a path (default: the cdi-api Service of the CDI namespace, with the CA bundle). */
  clientConfig?: (path: string) => Obj;
  /** Replaces the `cdi-api-` prefix of the configuration names. */
  namePrefix?: string;
  /** Default: every namespace. */
  namespaceSelector?: Obj;
}

/** The webhook configurations for `bundlePem` (cdi-apiserver's CA bundle), those `config` enables. */
export function webhookConfigurations(
  namespace: string,
  bundlePem: string,
  config: { webhookPvcRendering?: string } | undefined,
  registrations: readonly WebhookRegistration[] = WebhookRegistrations,
  target: WebhookTarget = {},
): Obj[] {
  const caBundle = Buffer.from(bundlePem).toString('base64');
  const clientConfig =
    target.clientConfig ??
    ((path: string): Obj => ({ service: { namespace, name: 'cdi-api', path, port: 443 }, caBundle }));
  return registrations
    .filter((r) => r.enabled?.(config) ?? true)
    .map((r) => ({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: `${r.type}WebhookConfiguration`,
      metadata: {
        name: target.namePrefix ? r.configuration.replace(/^cdi-api-/, target.namePrefix) : r.configuration,
        labels: labelsOf('cdi-api'),
      },
      webhooks: [
        {
          name: r.name,
          rules: r.rules,
          clientConfig: clientConfig(r.path),
          failurePolicy: r.failurePolicy,
          sideEffects: 'None',
          matchPolicy: 'Exact',
          namespaceSelector: target.namespaceSelector ?? {},
          objectSelector: r.objectSelector ?? {},
          ...(r.matchConditions?.length ? { matchConditions: r.matchConditions } : {}),
          timeoutSeconds: r.timeoutSeconds,
          admissionReviewVersions: r.reviewVersions ?? ['v1', 'v1beta1'],
          ...(r.type === 'Mutating' ? { reinvocationPolicy: 'Never' } : {}),
        },
      ],
    }));
}

/**
 * The DataVolume and clone-authorization webhooks (datavolume-validate, datavolume-mutate, pvc-clone-mutate) for a
 * cdi-apiserver a test runs itself, split by kind.
 */
export function cloneWebhookConfigurations(
  target: WebhookTarget & { clientConfig: (path: string) => Obj },
): { mutating: Obj[]; validating: Obj[] } {
  const paths = ['/datavolume-validate', '/datavolume-mutate', '/pvc-clone-mutate'];
  const all = webhookConfigurations(
    '',
    '',
    undefined,
    WebhookRegistrations.filter((r) => paths.includes(r.path)),
    target,
  );
  return {
    mutating: all.filter((c) => c['kind'] === 'MutatingWebhookConfiguration'),
    validating: all.filter((c) => c['kind'] === 'ValidatingWebhookConfiguration'),
  };
}
