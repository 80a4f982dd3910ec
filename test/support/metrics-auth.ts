// ServiceAccounts and tokens for the metrics endpoint's tests: a reader bound to a ClusterRole that may `get` the
// non-resource URL /metrics (as upstream's cdi-metrics-reader), a stranger bound to nothing, and TokenRequest API
// tokens for either (what a Prometheus in the cluster would mount).
import { HttpMethod } from '@kubernetes/client-node';
import type { KubeClient, Resource } from '../../src/kube/index.ts';
import { deleteIfExists } from '../integration/kube/cluster.ts';

export const Rbac = {
  ServiceAccount: {
    group: '',
    version: 'v1',
    kind: 'ServiceAccount',
    plural: 'serviceaccounts',
    namespaced: true,
  },
  ClusterRole: {
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    kind: 'ClusterRole',
    plural: 'clusterroles',
    namespaced: false,
  },
  ClusterRoleBinding: {
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    kind: 'ClusterRoleBinding',
    plural: 'clusterrolebindings',
    namespaced: false,
  },
} as const satisfies Record<string, Resource>;

/** A token for the ServiceAccount from the TokenRequest API (the shortest lifetime the API server allows). */
export async function serviceAccountToken(
  kube: KubeClient,
  namespace: string,
  name: string,
): Promise<string> {
  const r = await kube.request<{ status?: { token?: string } }>(
    HttpMethod.POST,
    `/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`,
    {
      body: {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { expirationSeconds: 600 },
      },
    },
  );
  const token = r.status?.token;
  if (!token) throw new Error(`TokenRequest for ${namespace}/${name} returned no token`);
  return token;
}

export interface MetricsReaders {
  /** bound to a ClusterRole with get on /metrics */
  reader: string;
  /** bound to nothing */
  stranger: string;
  /** the ClusterRoleBinding that makes the reader one */
  binding: string;
  cleanup(): Promise<void>;
}

/** ServiceAccounts `metrics-reader` and `stranger` in `namespace`, and the reader's cluster-wide binding. */
export async function createMetricsReaders(kube: KubeClient, namespace: string): Promise<MetricsReaders> {
  const role = `cdi-test-metrics-reader-${namespace}`;
  for (const name of ['metrics-reader', 'stranger'])
    await kube.create(Rbac.ServiceAccount, { metadata: { name, namespace } });
  await kube.create(Rbac.ClusterRole, {
    metadata: { name: role },
    rules: [{ nonResourceURLs: ['/metrics'], verbs: ['get'] }],
  });
  await kube.create(Rbac.ClusterRoleBinding, {
    metadata: { name: role },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: [{ kind: 'ServiceAccount', name: 'metrics-reader', namespace }],
  });
  return {
    reader: 'metrics-reader',
    stranger: 'stranger',
    binding: role,
    cleanup: async () => {
      await deleteIfExists(kube, Rbac.ClusterRoleBinding, role);
      await deleteIfExists(kube, Rbac.ClusterRole, role);
    },
  };
}
