// Helpers for writing status the Kubernetes way.
import { isNotFound, type Kube, type Resource } from './client.ts';

/** metav1.Time: RFC 3339 with whole seconds. */
export const metaNow = (d: Date = new Date()): string => d.toISOString().replace(/\.\d+Z$/, 'Z');

/** Writes status through the status subresource; falls back to a whole update where the CRD has no subresource. */
export async function writeStatus<
  T extends { metadata: { name?: string; namespace?: string; resourceVersion?: string } },
>(kube: Kube, r: Resource, obj: T): Promise<T> {
  try {
    return await kube.update(r, obj, 'status');
  } catch (e) {
    if (!isNotFound(e)) throw e;
    return kube.update(r, obj);
  }
}
