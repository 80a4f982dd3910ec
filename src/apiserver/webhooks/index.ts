/**
 * The admission webhooks cdi-apiserver serves, by path. A webhook is one file here exporting an Admitter (see
 * ../admission.ts); add it to the list and its registration to src/deploy/webhooks.ts (the operator renders the
 * (Validating|Mutating)WebhookConfiguration from it; a test checks that every registered path is served). Upstream's
 * set: /datavolume-validate, /datavolume-mutate, /pvc-mutate, /cdi-validate, /dataimportcron-validate,
 * /populator-validate, /objecttransfer-validate (ObjectTransfer is deprecated upstream but v1.66 still validates it); and
 * ours: /pvc-clone-mutate (the older PVC clone API, secured). The configuration entries each needs are in docs/clone.md.
 */
import type { KubeClient } from '../../kube/index.ts';
import type { TokenGenerator } from '../../token/token.ts';
import type { Admitter } from '../admission.ts';
import { cdiValidate } from './cdi-validate.ts';
import { dataImportCronValidate, DataImportCronValidatePath } from './dataimportcron-validate.ts';
import { dataVolumeMutate, DataVolumeMutatePath } from './datavolume-mutate.ts';
import { dataVolumeValidate, validateDataVolumeSpec } from './datavolume-validate.ts';
import { objectTransferValidate, ObjectTransferValidatePath } from './objecttransfer-validate.ts';
import { populatorValidate, PopulatorValidatePath } from './populator-validate.ts';
import { pvcCloneMutate, PvcCloneMutatePath } from './pvc-clone-mutate.ts';
import { pvcMutate } from './pvc-mutate.ts';

export interface WebhookDeps {
  kube: KubeClient;
  /** The CDI namespace. */
  namespace: string;
  /** Signs the short clone tokens (issuer cdi-apiserver, 5 minutes; src/token/clone.ts). */
  cloneTokens: TokenGenerator;
}

export interface WebhookRoute {
  path: string;
  admit: Admitter;
}

export function webhooks(deps: WebhookDeps): WebhookRoute[] {
  return [
    { path: '/datavolume-validate', admit: dataVolumeValidate(deps) },
    { path: '/cdi-validate', admit: cdiValidate(deps) },
    { path: '/pvc-mutate', admit: pvcMutate(deps) },
    { path: DataVolumeMutatePath, admit: dataVolumeMutate(deps) },
    { path: PvcCloneMutatePath, admit: pvcCloneMutate(deps) },
    {
      path: DataImportCronValidatePath,
      // upstream validates the template as a DataVolume spec, its fields under `Template`
      admit: dataImportCronValidate({ validateTemplate: (spec) => validateDataVolumeSpec(spec, 'Template') }),
    },
    { path: PopulatorValidatePath, admit: populatorValidate() },
    { path: ObjectTransferValidatePath, admit: objectTransferValidate(deps) },
  ];
}
