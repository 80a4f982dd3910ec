// The config controller: keeps the singleton CDIConfig `config` existing and its status resolved.
import { isDeepStrictEqual } from 'node:util';
import { CDIConfigName, GroupVersion, ManagedLabels } from '../shared/constants.ts';
import { isAlreadyExists, Res, type Kube } from '../shared/client.ts';
import type { Logger, Result } from '../shared/runtime.ts';
import type { CDIConfig, StorageClass } from '../shared/types.ts';
import { computeConfigStatus } from './status.ts';

export interface ConfigDeps {
  kube: Kube;
  log: Logger;
}

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
  const status = computeConfigStatus(config, classes);
  if (isDeepStrictEqual(status, config.status ?? {})) return;
  d.log.info('updating CDIConfig status', { name: CDIConfigName });
  // CDIConfig has no status subresource (as upstream): the status is part of the object
  await d.kube.update(Res.cdiConfig, { ...config, status });
}
