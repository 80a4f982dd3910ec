/**
 * /pvc-mutate (upstream pkg/apiserver/webhooks/pvc-mutate.go, RenderPvc): a PersistentVolumeClaim created with the
 * label cdi.kubevirt.io/applyStorageProfile=true is completed as a DataVolume's `storage` is: the storage class
 * (the default one when none is named), access modes and volume mode from its StorageProfile, the size grown by the
 * filesystem overhead (and to the profile's minimum). The webhook configuration selects only labelled claims; it is
 * registered unless CDIConfig's webhookPvcRendering is Disabled. A claim that cannot be completed is refused with
 * the reason (no storage class, no access mode in the profile, …).
 *
 * The completion is the DataVolume controller's own (src/controller/datavolume/render.ts), so the two never differ.
 */
import type { V1PersistentVolumeClaimSpec } from '@kubernetes/client-node';
import { Label } from '../../api/constants.ts';
import { renderPvcSpec } from '../../controller/datavolume/render.ts';
import type { CDIConfig, DataVolume, StorageClass, StorageProfile } from '../../controller/shared/types.ts';
import { errorMessage, Resources, type KubeClient, type PersistentVolumeClaim } from '../../kube/index.ts';
import { allowed, errored, patched, type AdmissionRequest, type AdmissionResponse } from '../admission.ts';

export interface PvcMutateDeps {
  kube: KubeClient;
}

export function pvcMutate(d: PvcMutateDeps) {
  return async (req: AdmissionRequest): Promise<AdmissionResponse> => {
    if (req.operation !== 'CREATE') return allowed();
    if (req.resource.group !== '' || req.resource.resource !== 'persistentvolumeclaims')
      return errored(`resource is ${req.resource.resource}, expected persistentvolumeclaims`);
    const pvc = req.object as PersistentVolumeClaim | undefined;
    if (!pvc?.spec) return errored('the AdmissionReview has no PersistentVolumeClaim object');
    // the configuration's objectSelector sends only these; anything else passes as it is
    if (pvc.metadata?.labels?.[Label.ApplyStorageProfile] !== 'true') return allowed();
    const [classes, profiles, config] = await Promise.all([
      d.kube.listAll<StorageClass>(Resources.StorageClass),
      d.kube.listAll<StorageProfile>(Resources.StorageProfile),
      d.kube.getOrUndefined<CDIConfig>(Resources.CDIConfig, 'config'),
    ]);
    // the claim's spec read as a DataVolume's `storage`
    const dv = {
      metadata: { name: pvc.metadata?.name ?? '', namespace: pvc.metadata?.namespace ?? req.namespace ?? '' },
      spec: { storage: structuredClone(pvc.spec), source: { blank: {} } },
    } as unknown as DataVolume;
    let rendered: V1PersistentVolumeClaimSpec;
    try {
      rendered = renderPvcSpec(dv, undefined, {
        storageClasses: classes.items,
        storageProfile: (name) => profiles.items.find((p) => p.metadata.name === name),
        config,
      });
    } catch (e) {
      return errored(errorMessage(e));
    }
    const spec = { ...pvc.spec, ...rendered };
    if (JSON.stringify(spec) === JSON.stringify(pvc.spec)) return allowed();
    return patched([{ op: 'replace', path: '/spec', value: spec }]);
  };
}
