// Index functions every cache of Kubernetes objects wants, beside the namespace index the informer keeps itself.
import { controllerOf, type KubeObject, type Pod } from './types.ts';

/** Objects by the uid of their controller owner: a PVC's importer pod, a pod's scratch PVC. */
export const ControllerUidIndex = 'controller-uid';
export const controllerUid = (o: KubeObject): string[] => {
  const ref = controllerOf(o);
  return ref ? [ref.uid] : [];
};

/** Pods by "namespace/claim" of every PVC they mount: who is using a claim. */
export const PodClaimIndex = 'pod-claims';
export const podClaims = (p: KubeObject): string[] => {
  const pod = p as Pod;
  const ns = pod.metadata?.namespace ?? '';
  const out: string[] = [];
  for (const v of pod.spec?.volumes ?? []) {
    const claim = v.persistentVolumeClaim?.claimName;
    if (claim) out.push(`${ns}/${claim}`);
  }
  return out;
};

/** Events by the uid of the object they are about. */
export const InvolvedUidIndex = 'involved-uid';
export const involvedUid = (e: KubeObject): string[] => {
  const uid = (e as { involvedObject?: { uid?: string } }).involvedObject?.uid;
  return uid ? [uid] : [];
};
