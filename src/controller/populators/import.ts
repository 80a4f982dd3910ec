// The import populator (upstream pkg/controller/populators/import-populator.go): a PVC whose spec.dataSourceRef names
// a VolumeImportSource is filled through `prime-<pvc uid>`, which carries the import annotations of the source; the
// import controller imports into it like into any annotated PVC. Once the prime's import Succeeded, its PV is rebound
// to the target and the Lost prime deleted; the target keeps the import's annotations (pod phase, restarts, running
// condition, preallocation) and `storage.populator.progress`: the running importer's percentage (scraped off the
// reconcile path, as for DataVolumes), 100.0% when done. The loop is base.ts's.
import { Ann } from '../shared/constants.ts';
import { Res } from '../shared/client.ts';
import type { Result } from '../shared/runtime.ts';
import type { KubeObject } from '../../kube/index.ts';
import type { VolumeImportSource } from '../../api/populators.ts';
import { importSourceAnnotations } from '../datavolume/render.ts';
import { reconcilePrimePopulator, type PopulatorDeps, type PrimeKind } from './base.ts';

export { isPopulatedBy, primeName, type PopulatorDeps } from './base.ts';

export const VolumeImportSourceKind = 'VolumeImportSource';

export const ImportPopulator: PrimeKind<VolumeImportSource & KubeObject> = {
  kind: VolumeImportSourceKind,
  resource: Res.volumeImportSource,
  accepts: (source, pvc) => !source.spec.targetClaim || source.spec.targetClaim === pvc.metadata?.name,
  primeAnnotations: (source, preallocation) => {
    const a: Record<string, string> = {
      [Ann.contentType]: source.spec.contentType === 'archive' ? 'archive' : 'kubevirt',
      [Ann.preallocationRequested]: String(source.spec.preallocation ?? preallocation),
      ...(source.spec.source ? importSourceAnnotations(source.spec.source) : {}),
    };
    if (!a[Ann.source]) a[Ann.source] = 'none';
    return a;
  },
  runningProgress: true,
  failed: { reason: 'ImportFailed', message: (pvc) => `Failed to import into PVC ${pvc}` },
  succeeded: { reason: 'ImportSucceeded', message: (pvc) => `Successfully imported into PVC ${pvc}` },
};

export function reconcileImportPopulator(d: PopulatorDeps, key: string): Promise<Result | void> {
  return reconcilePrimePopulator(d, ImportPopulator, key);
}
