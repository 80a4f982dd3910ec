// CDIConfig.status as upstream's config controller resolves it (pkg/controller/config-controller.go), for the parts
// this project serves: scratch storage class, default worker pod resources, filesystem overhead, preallocation,
// import proxy and image pull secrets. The upload-proxy URL waits for the upload proxy.
import { DefaultGlobalOverhead, DefaultPodResources } from '../shared/constants.ts';
import type { CDIConfig, StorageClass } from '../shared/types.ts';

const validOverhead = (s: string | undefined): s is string =>
  s !== undefined && /^(0(?:\.\d{1,3})?|1)$/.test(s);

export class InvalidOverheadError extends Error {}

export function computeConfigStatus(
  config: CDIConfig,
  classes: StorageClass[],
): NonNullable<CDIConfig['status']> {
  const spec = config.spec ?? {};
  const status: NonNullable<CDIConfig['status']> = { ...structuredClone(config.status ?? {}) };
  status.preallocation = spec.preallocation === true;

  const names = classes.map((c) => c.metadata.name ?? '');
  status.scratchSpaceStorageClass =
    spec.scratchSpaceStorageClass && names.includes(spec.scratchSpaceStorageClass)
      ? spec.scratchSpaceStorageClass
      : '';

  const r = spec.podResourceRequirements;
  status.defaultPodResourceRequirements = {
    limits: {
      cpu: r?.limits?.['cpu'] ?? DefaultPodResources.limits.cpu,
      memory: r?.limits?.['memory'] ?? DefaultPodResources.limits.memory,
    },
    requests: {
      cpu: r?.requests?.['cpu'] ?? DefaultPodResources.requests.cpu,
      memory: r?.requests?.['memory'] ?? DefaultPodResources.requests.memory,
    },
  };

  if (spec.imagePullSecrets) status.imagePullSecrets = spec.imagePullSecrets;
  else delete status.imagePullSecrets;

  const global = validOverhead(spec.filesystemOverhead?.global)
    ? spec.filesystemOverhead.global
    : DefaultGlobalOverhead;
  const per = spec.filesystemOverhead?.storageClass ?? {};
  const storageClass: Record<string, string> = {};
  for (const n of names) {
    const v: string | undefined = per[n];
    if (v !== undefined) {
      if (!/^(0(?:\.\d{1,3})?|1)$/.test(v)) {
        throw new InvalidOverheadError(
          `CDIConfig filesystemOverhead.storageClass.${n} is "${v}": use 0, 1 or 0.xxx`,
        );
      }
      storageClass[n] = v;
    } else storageClass[n] = global;
  }
  status.filesystemOverhead = { global, storageClass };

  status.importProxy = spec.importProxy
    ? structuredClone(spec.importProxy)
    : { HTTPProxy: '', HTTPSProxy: '', noProxy: '', trustedCAProxy: '' };
  return status;
}
