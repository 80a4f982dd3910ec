// The kubeconfig of a CDI process: --kubeconfig <path> or KUBECONFIG out of cluster, the pod's service account in it.
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../kube/index.ts';

export function processKubeConfig(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): KubeConfig {
  const i = argv.indexOf('--kubeconfig');
  const path = i >= 0 ? argv[i + 1] : env.KUBECONFIG;
  if (path) return loadKubeConfig(path);
  const kc = new KubeConfig();
  try {
    kc.loadFromCluster();
  } catch {
    throw new Error(
      'no kubeconfig: set KUBECONFIG or --kubeconfig, or run inside a pod with a service account',
    );
  }
  const server = kc.getCurrentCluster()?.server;
  if (!server || server === 'https://undefined:undefined') {
    throw new Error(
      'not running in a cluster (KUBERNETES_SERVICE_HOST unset): set KUBECONFIG or --kubeconfig',
    );
  }
  return kc;
}

/** The CDI namespace: POD_NAMESPACE, else the service account's namespace, else "cdi". */
export function processNamespace(env: Record<string, string | undefined> = process.env): string {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim() || 'cdi';
  } catch {
    return 'cdi';
  }
}
