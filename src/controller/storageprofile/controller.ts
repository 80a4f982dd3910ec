// The StorageProfile controller: one profile per StorageClass, same name, with the claim property sets the DV
// controller uses to complete the `storage` API (upstream pkg/controller/storageprofile-controller.go).
import { isDeepStrictEqual } from 'node:util';
import { GroupVersion, ManagedLabels } from '../shared/constants.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import type { StorageClass, StorageProfile } from '../shared/types.ts';
import { kubeTime, writeStatus } from '../shared/status.ts';
import { capabilitiesFor } from './capabilities.ts';

export interface ProfileDeps {
  kube: Kube;
  log: Logger;
  now?: () => Date;
}

export function computeProfileStatus(
  sc: StorageClass,
  profile: StorageProfile,
  now: string,
): NonNullable<StorageProfile['status']> {
  const spec = profile.spec ?? {};
  const status: NonNullable<StorageProfile['status']> = structuredClone(profile.status ?? {});
  status.storageClass = sc.metadata.name ?? '';
  status.provisioner = sc.provisioner;
  const ann = sc.metadata.annotations?.['cdi.kubevirt.io/clone-strategy'];
  // No VolumeSnapshotClass exists on this cluster (no snapshot CRDs), so copy is the advised strategy.
  status.cloneStrategy =
    spec.cloneStrategy ?? (ann === 'copy' || ann === 'snapshot' || ann === 'csi-clone' ? ann : 'copy');
  status.dataImportCronSourceFormat = spec.dataImportCronSourceFormat ?? 'pvc';
  if (spec.claimPropertySets?.length) {
    for (const cps of spec.claimPropertySets) {
      if (!cps.volumeMode || !cps.accessModes?.length) {
        throw new Error(
          `StorageProfile ${sc.metadata.name}: each claimPropertySet must provide both volumeMode and accessModes`,
        );
      }
    }
    status.claimPropertySets = structuredClone(spec.claimPropertySets);
  } else {
    status.claimPropertySets = capabilitiesFor(sc) ?? [];
  }
  const recognized = capabilitiesFor(sc) !== undefined;
  const cond = {
    type: 'Recognized',
    status: recognized ? 'True' : 'False',
    reason: recognized ? 'RecognizedProvisioner' : 'UnrecognizedProvisioner',
    message: recognized ? 'Provisioner is recognized' : 'Provisioner is not recognized',
  };
  const prev = status.conditions?.find((c) => c.type === 'Recognized');
  const changed =
    !prev || prev.status !== cond.status || prev.reason !== cond.reason || prev.message !== cond.message;
  status.conditions = [
    ...(status.conditions ?? []).filter((c) => c.type !== 'Recognized'),
    changed ? { ...cond, lastTransitionTime: now, lastHeartbeatTime: now } : prev,
  ];
  return status;
}

export async function reconcileStorageProfile(d: ProfileDeps, key: string): Promise<Result | void> {
  const sc = await d.kube.get<StorageClass>(Res.storageClass, key);
  if (!sc) {
    // upstream deletes the profile of a deleted class
    if (await d.kube.delete(Res.storageProfile, key))
      d.log.info('deleted StorageProfile of a deleted StorageClass', { name: key });
    return;
  }
  let profile = await d.kube.get<StorageProfile>(Res.storageProfile, key);
  if (!profile) {
    try {
      profile = await d.kube.create<StorageProfile>(Res.storageProfile, {
        apiVersion: GroupVersion,
        kind: 'StorageProfile',
        metadata: {
          name: key,
          labels: { ...ManagedLabels },
        },
        spec: {},
      });
    } catch (e) {
      if (!isAlreadyExists(e)) throw e;
      return { requeueAfterMs: 0 };
    }
  }
  const status = computeProfileStatus(sc, profile, kubeTime(d.now?.() ?? new Date()));
  if (isDeepStrictEqual(status, profile.status ?? {})) return;
  await writeStatus(d.kube, Res.storageProfile, { ...profile, status });
}
