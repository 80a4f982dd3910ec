// The upload populator (upstream pkg/controller/populators/upload-populator.go): a PVC whose spec.dataSourceRef names
// a VolumeUploadSource gets `prime-<pvc uid>` with the upload annotations (upload target, the source's content type,
// preallocation), so the upload controller starts `cdi-upload-prime-<uid>` for it. The user uploads naming the TARGET
// (its token, `cdi upload --no-create <target>`); cdi-uploadproxy follows the target's storage.populator.pvcPrime to
// the prime's server. The target mirrors the prime's pod phase, readiness and running condition while it waits;
// once the upload Succeeded the PV is rebound to the target, storage.populator.pvcPrime is dropped (as upstream: the
// proxy then refuses further uploads) and the Lost prime deleted. The loop is base.ts's.
import { Ann } from '../shared/constants.ts';
import { Res } from '../shared/client.ts';
import type { Result } from '../shared/runtime.ts';
import type { KubeObject } from '../../kube/index.ts';
import type { VolumeUploadSource } from '../../api/populators.ts';
import { reconcilePrimePopulator, type PopulatorDeps, type PrimeKind } from './base.ts';

export const VolumeUploadSourceKind = 'VolumeUploadSource';

export const UploadPopulator: PrimeKind<VolumeUploadSource & KubeObject> = {
  kind: VolumeUploadSourceKind,
  resource: Res.volumeUploadSource,
  primeAnnotations: (source, preallocation) => ({
    [Ann.uploadRequest]: '',
    [Ann.contentType]: source.spec?.contentType === 'archive' ? 'archive' : 'kubevirt',
    [Ann.preallocationRequested]: String(source.spec?.preallocation ?? preallocation),
  }),
  dropPrimeNameWhenDone: true,
  failed: { reason: 'UploadFailed', message: (pvc) => `Upload into ${pvc} failed` },
  succeeded: { reason: 'UploadSucceeded', message: (pvc) => `Successfully uploaded into ${pvc}` },
};

export function reconcileUploadPopulator(d: PopulatorDeps, key: string): Promise<Result | void> {
  return reconcilePrimePopulator(d, UploadPopulator, key);
}
