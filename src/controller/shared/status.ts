// Helpers for writing status the Kubernetes way.
import type { Kube, Resource } from './client.ts';

/** metav1.Time: RFC 3339 with whole seconds. */
export const metaNow = (d: Date = new Date()): string => d.toISOString().replace(/\.\d+Z$/, 'Z');

/** Writes status through the status subresource (StorageProfile; DataVolume uses a merge patch of it). */
export async function writeStatus<
  T extends { metadata: { name?: string; namespace?: string; resourceVersion?: string } },
>(kube: Kube, r: Resource, obj: T): Promise<T> {
  return kube.update(r, obj, 'status');
}
