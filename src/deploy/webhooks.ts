/**
 * The admission webhook configurations for the webhooks cdi-apiserver serves (src/apiserver/webhooks/), as upstream's
 * operator writes them (pkg/operator/resources/cluster/apiserver.go): one configuration per webhook, the Service
 * cdi-api:443 of the CDI namespace, failurePolicy Fail, sideEffects None, matchPolicy Exact, 30 s, reviews v1 and
 * v1beta1. The operator renders them with the cdi-apiserver CA bundle; tests point them at a URL instead.
 *
 *   configuration                         kind        webhook                               path                 objects
 *   cdi-api-datavolume-validate           Validating  datavolume-validate.cdi.kubevirt.io   /datavolume-validate datavolumes CREATE, UPDATE
 *   cdi-api-datavolume-mutate             Mutating    datavolume-mutate.cdi.kubevirt.io     /datavolume-mutate   datavolumes CREATE, UPDATE
 *   cdi-api-pvc-clone-mutate (cdi-ts)     Mutating    pvc-clone-mutate.cdi.kubevirt.io      /pvc-clone-mutate    persistentvolumeclaims CREATE, UPDATE
 *                                                                                                                with a k8s.io/CloneRequest annotation
 * The last one selects its PVCs with a matchCondition (CEL, GA since Kubernetes 1.30): only PVCs that ask for a clone
 * depend on cdi-apiserver being up.
 */
type Obj = Record<string, unknown>;

export interface WebhookConfigOptions {
  /** The clientConfig for a path: the cdi-api Service (default) or a URL. */
  clientConfig: (path: string) => Obj;
  /** Replaces the `cdi-api-` prefix of the configuration names (tests). */
  namePrefix?: string;
  /** Default: every namespace. */
  namespaceSelector?: Obj;
  labels?: Record<string, string>;
}

/** The cdi-api Service as a webhook's clientConfig. */
export function serviceClientConfig(namespace: string, caBundle?: string): (path: string) => Obj {
  return (path) => ({
    service: { namespace, name: 'cdi-api', path, port: 443 },
    ...(caBundle ? { caBundle } : {}),
  });
}

const CloneRequestCondition = {
  name: 'clone-request',
  expression: "has(object.metadata.annotations) && 'k8s.io/CloneRequest' in object.metadata.annotations",
};

function webhook(o: WebhookConfigOptions, name: string, path: string, group: string, resource: string): Obj {
  return {
    name,
    rules: [
      {
        operations: ['CREATE', 'UPDATE'],
        apiGroups: [group],
        apiVersions: [group === '' ? 'v1' : 'v1beta1'],
        resources: [resource],
        scope: '*',
      },
    ],
    clientConfig: o.clientConfig(path),
    failurePolicy: 'Fail',
    sideEffects: 'None',
    matchPolicy: 'Exact',
    namespaceSelector: o.namespaceSelector ?? {},
    objectSelector: {},
    timeoutSeconds: 30,
    admissionReviewVersions: ['v1', 'v1beta1'],
  };
}

function configuration(o: WebhookConfigOptions, kind: string, name: string, hooks: Obj[]): Obj {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind,
    metadata: { name: `${o.namePrefix ?? 'cdi-api-'}${name}`, labels: { 'cdi.kubevirt.io': 'cdi-api', ...o.labels } },
    webhooks: hooks,
  };
}

/** The configurations of the DataVolume and clone-authorization webhooks. */
export function cloneWebhookConfigurations(o: WebhookConfigOptions): { mutating: Obj[]; validating: Obj[] } {
  return {
    validating: [
      configuration(o, 'ValidatingWebhookConfiguration', 'datavolume-validate', [
        webhook(o, 'datavolume-validate.cdi.kubevirt.io', '/datavolume-validate', 'cdi.kubevirt.io', 'datavolumes'),
      ]),
    ],
    mutating: [
      configuration(o, 'MutatingWebhookConfiguration', 'datavolume-mutate', [
        {
          ...webhook(o, 'datavolume-mutate.cdi.kubevirt.io', '/datavolume-mutate', 'cdi.kubevirt.io', 'datavolumes'),
          reinvocationPolicy: 'Never',
        },
      ]),
      configuration(o, 'MutatingWebhookConfiguration', 'pvc-clone-mutate', [
        {
          ...webhook(o, 'pvc-clone-mutate.cdi.kubevirt.io', '/pvc-clone-mutate', '', 'persistentvolumeclaims'),
          matchConditions: [CloneRequestCondition],
          reinvocationPolicy: 'Never',
        },
      ]),
    ],
  };
}
