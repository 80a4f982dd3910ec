// The operator's ConfigMaps and the NetworkPolicies, with upstream's names.
//
// - cdi-config: upstream's "which CDI resource is the active one" marker (pkg/operator/api.go ConfigMapName). It is
//   controlled by the CDI resource that installed CDI; a second CDI resource finds it owned by another and goes to
//   phase Error.
// - cdi-insecure-registries: the ConfigMap older CDI releases read registries from. CDI reads
//   CDIConfig.spec.insecureRegistries (CDI.spec.config.insecureRegistries); the ConfigMap is created empty for tools
//   that still write it, and the operator never touches its data.
// - NetworkPolicies (upstream namespaced/networkpolicies.go, with its ports): ingress to the metrics ports, to the
//   webhook/API server and the upload proxy; egress from the upload proxy to upload-server pods and from
//   cdi-deployment to the importers' metrics; egress for DataImportCron pollers. Because the egress policies
//   isolate their pods, cdi-allow-access-cluster-services (not upstream's: KubeVirt ships the equivalent) lets pods
//   labelled np.kubevirt.io/allow-access-cluster-services reach DNS and the API server.
import { Label } from '../api/constants.ts';
import {
  AllowClusterServicesLabel,
  CDILabel,
  labelsOf,
  PrometheusLabel,
  type Obj,
} from '../deploy/common.ts';

export const OperatorConfigMap = 'cdi-config';
export const InsecureRegistriesConfigMap = 'cdi-insecure-registries';

export function configMaps(namespace: string): Obj[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: OperatorConfigMap,
        namespace,
        labels: { ...labelsOf(), 'operator.cdi.kubevirt.io': '' },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: InsecureRegistriesConfigMap, namespace, labels: labelsOf() },
    },
  ];
}

const tcp = (port: number): Obj => ({ port, protocol: 'TCP' });

function policy(namespace: string, name: string, spec: Obj): Obj {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace, labels: labelsOf() },
    spec,
  };
}

export function networkPolicies(namespace: string): Obj[] {
  return [
    policy(namespace, 'cdi-allow-ingress-to-metrics', {
      podSelector: { matchLabels: { [PrometheusLabel]: 'true' } },
      policyTypes: ['Ingress'],
      ingress: [{ ports: [tcp(8443)] }],
    }),
    policy(namespace, 'cdi-allow-uploadproxy-communications', {
      podSelector: { matchLabels: { [CDILabel]: 'cdi-uploadproxy' } },
      policyTypes: ['Ingress', 'Egress'],
      egress: [
        {
          to: [{ podSelector: { matchLabels: { [CDILabel]: 'cdi-upload-server' } }, namespaceSelector: {} }],
          ports: [tcp(8443)],
        },
      ],
      ingress: [{ ports: [tcp(8443)] }],
    }),
    policy(namespace, 'cdi-allow-cdi-api-webhook-server', {
      podSelector: { matchLabels: { [CDILabel]: 'cdi-apiserver' } },
      policyTypes: ['Ingress'],
      ingress: [{ ports: [tcp(8443)] }],
    }),
    policy(namespace, 'cdi-allow-cdi-deployment-importer-metrics', {
      podSelector: { matchLabels: { [CDILabel]: 'cdi-deployment' } },
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ podSelector: { matchLabels: { [PrometheusLabel]: 'true' } }, namespaceSelector: {} }],
          ports: [tcp(8443)],
        },
      ],
    }),
    policy(namespace, 'cdi-allow-egress-from-poller', {
      podSelector: { matchLabels: { [Label.DataImportCronPoller]: '' } },
      policyTypes: ['Egress'],
      egress: [{}],
    }),
    policy(namespace, 'cdi-allow-access-cluster-services', {
      podSelector: { matchLabels: { [AllowClusterServicesLabel]: 'true' } },
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
          ports: [
            { port: 53, protocol: 'UDP' },
            { port: 53, protocol: 'TCP' },
          ],
        },
        // the API server: its endpoints are outside the pod network, so by port
        { ports: [tcp(443), tcp(6443)] },
      ],
    }),
  ];
}
