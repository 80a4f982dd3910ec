// The config controller: keeps the singleton CDIConfig `config` existing and its status resolved. Settings that
// cannot be applied as written are said in status.conditions (Valid=False with every reason) and in a Warning event
// on the CDIConfig, not only in a log line.
import { isDeepStrictEqual } from 'node:util';
import { setCondition, type ConfigMap } from '../../kube/index.ts';
import { CDIConfigName, GroupVersion, ManagedLabels, Reason } from '../shared/constants.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import type { Recorder } from '../shared/events.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import type { CDIConfig, StorageClass } from '../shared/types.ts';
import { computeConfigStatus } from './status.ts';

export interface ConfigDeps {
  kube: Kube;
  log: Logger;
  recorder?: Recorder;
  /** CDI's namespace: where importProxy.trustedCAProxy must exist. */
  cdiNamespace?: string;
  now?: () => Date;
}

export const ValidCondition = 'Valid';

export async function ensureConfig(kube: Kube): Promise<CDIConfig> {
  const existing = await kube.get<CDIConfig>(Res.cdiConfig, CDIConfigName);
  if (existing) return existing;
  try {
    return await kube.create<CDIConfig>(Res.cdiConfig, {
      apiVersion: GroupVersion,
      kind: 'CDIConfig',
      metadata: {
        name: CDIConfigName,
        labels: { ...ManagedLabels },
      },
      spec: {},
    });
  } catch (e) {
    if (!isAlreadyExists(e)) throw e;
    const again = await kube.get<CDIConfig>(Res.cdiConfig, CDIConfigName);
    if (!again) throw new Error('CDIConfig config vanished while being created; will retry');
    return again;
  }
}

export async function reconcileConfig(d: ConfigDeps, key: string): Promise<Result | void> {
  if (key !== CDIConfigName) return;
  const config = await ensureConfig(d.kube);
  const classes = (await d.kube.list<StorageClass>(Res.storageClass)).items;
  const { status, problems } = computeConfigStatus(config, classes);
  const ca = config.spec?.importProxy?.trustedCAProxy;
  let caMissing = false;
  if (ca) {
    const ns = d.cdiNamespace ?? 'cdi';
    caMissing = !(await d.kube.get<ConfigMap>(Res.configMap, ca, ns));
    if (caMissing)
      problems.push(
        `spec.importProxy.trustedCAProxy "${ca}" is not a ConfigMap in ${ns}: importers behind the proxy cannot start until it exists`,
      );
  }
  const previous = config.status?.conditions?.find((c) => c.type === ValidCondition);
  const message = problems.length > 0 ? problems.join('; ') : 'every setting is applied as written';
  status.conditions = setCondition(
    config.status?.conditions,
    {
      type: ValidCondition,
      status: problems.length > 0 ? 'False' : 'True',
      reason: problems.length > 0 ? Reason.InvalidConfiguration : 'AsRequested',
      message,
    },
    d.now?.() ?? new Date(),
  );
  // ConfigMaps are not watched: look again for a missing CA now and then
  const result = caMissing ? { requeueAfterMs: 60_000 } : undefined;
  if (isDeepStrictEqual(status, config.status ?? {})) return result;
  d.log.info('updating CDIConfig status', { name: CDIConfigName, problems: problems.length });
  // CDIConfig has no status subresource (as upstream): the status is part of the object; the PUT carries the
  // resourceVersion it was computed from
  await d.kube.update(Res.cdiConfig, { ...config, status });
  if (problems.length > 0 && previous?.message !== message)
    await d.recorder?.record(
      { apiVersion: GroupVersion, kind: 'CDIConfig', metadata: config.metadata },
      'Warning',
      Reason.InvalidConfiguration,
      message,
    );
  return result;
}
