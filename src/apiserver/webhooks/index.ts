/**
 * The admission webhooks cdi-apiserver serves, by path. A webhook is one file here exporting an Admitter (see
 * ../admission.ts); add it to the list and to the operator's (Validating|Mutating)WebhookConfiguration. Upstream's
 * set, for the issues that bring them: /datavolume-validate, /datavolume-mutate, /pvc-mutate, /cdi-validate,
 * /dataimportcron-validate, /populator-validate, /objecttransfer-validate.
 */
import type { KubeClient } from '../../kube/index.ts';
import type { Admitter } from '../admission.ts';
import { dataImportCronValidate, DataImportCronValidatePath } from './dataimportcron-validate.ts';

export interface WebhookDeps {
  kube: KubeClient;
  /** The CDI namespace. */
  namespace: string;
}

export interface WebhookRoute {
  path: string;
  admit: Admitter;
}

export function webhooks(_deps: WebhookDeps): WebhookRoute[] {
  return [{ path: DataImportCronValidatePath, admit: dataImportCronValidate() }];
}
