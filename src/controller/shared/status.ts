// Helpers for writing status the Kubernetes way.
import { kubeTime } from '../../kube/index.ts';
import type { Kube, Resource } from './client.ts';

export { kubeTime };

interface Versioned {
  metadata: { name?: string; namespace?: string; resourceVersion?: string };
}

/** Writes status through the status subresource with a PUT (the object's resourceVersion makes it conditional). */
export async function writeStatus<T extends Versioned>(kube: Kube, r: Resource, obj: T): Promise<T> {
  return kube.update(r, obj, 'status');
}

/**
 * A merge patch of the status subresource that carries the resourceVersion the status was computed from, so the API
 * server refuses it (409) if the object changed since: status computed from a stale read never overwrites a newer one.
 */
export async function patchStatus<T extends Versioned>(
  kube: Kube,
  r: Resource,
  obj: T,
  status: unknown,
): Promise<T> {
  const { name, namespace, resourceVersion } = obj.metadata;
  if (!resourceVersion)
    throw new Error(`${r.kind} ${name ?? ''} has no resourceVersion: read it from the cluster first`);
  return kube.mergePatch<T>(r, name ?? '', namespace, { metadata: { resourceVersion }, status }, 'status');
}
