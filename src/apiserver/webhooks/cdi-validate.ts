/**
 * /cdi-validate (upstream pkg/apiserver/webhooks/cdi-validate.go): refuses to delete the CDI resource while
 * DataVolumes exist (those of DataImportCrons excepted) when its uninstallStrategy is BlockUninstallIfWorkloadsExist,
 * with upstream's message. A CDI resource never deployed (no phase) or in phase Error is always deletable. The
 * webhook is registered with failurePolicy Ignore (as upstream), so without cdi-apiserver the operator itself holds
 * the removal until the DataVolumes are gone (src/operator/uninstall.ts).
 */
import { uninstallBlockedMessage, type CDI } from '../../api/cdi.ts';
import { Resources, type KubeClient, type KubeObject } from '../../kube/index.ts';
import { allowed, errored, type AdmissionRequest, type AdmissionResponse } from '../admission.ts';

export interface CdiValidateDeps {
  kube: KubeClient;
}

export function cdiValidate(d: CdiValidateDeps) {
  return async (req: AdmissionRequest): Promise<AdmissionResponse> => {
    if (req.resource.group !== 'cdi.kubevirt.io' || req.resource.resource !== 'cdis')
      return errored(`unexpected resource: ${req.resource.resource}`);
    if (req.operation !== 'DELETE') return allowed();
    let cdi = req.oldObject as (CDI & { status?: { phase?: string } }) | undefined;
    if (!cdi && req.name) cdi = await d.kube.get<CDI & KubeObject>(Resources.CDI, req.name);
    if (!cdi) return errored('cannot derive deleted resource');
    const phase = cdi.status?.phase ?? '';
    if (phase === '' || phase === 'Error') return allowed();
    if (cdi.spec?.uninstallStrategy !== 'BlockUninstallIfWorkloadsExist') return allowed();
    const dvs = await d.kube.list(Resources.DataVolume, {
      labelSelector: '!cdi.kubevirt.io/dataImportCron',
      limit: 2,
    });
    if (dvs.items.length > 0) return errored(uninstallBlockedMessage(dvs.items.length));
    return allowed();
  };
}
