// CDIConfig.status as upstream's config controller resolves it (pkg/controller/config-controller.go), for the parts
// this project serves: scratch storage class, default worker pod resources, filesystem overhead, preallocation,
// import proxy and image pull secrets. The upload-proxy URL waits for the upload proxy.
// A spec setting that cannot be applied as written falls back to upstream's default (as upstream does, silently);
// here each one is also a problem, which the controller shows as the Valid condition and a Warning event.
import { DefaultGlobalOverhead, DefaultPodResources } from '../shared/constants.ts';
import { parseMilliQuantity, parseQuantity } from '../shared/quantity.ts';
import type { CDIConfig, StorageClass } from '../shared/types.ts';

const validOverhead = (s: string | undefined): boolean => s !== undefined && /^(0(?:\.\d{1,3})?|1)$/.test(s);

export interface ConfigResolution {
  status: NonNullable<CDIConfig['status']>;
  /** One sentence per setting that could not be applied, saying what is used instead. */
  problems: string[];
}

type Quantities = Record<string, string | number> | undefined;

/** The spec's quantity if it parses, else the default (and a problem). */
function quantity(
  problems: string[],
  field: string,
  given: string | number | undefined,
  fallback: string,
): string {
  if (given === undefined) return fallback;
  try {
    parseQuantity(String(given));
    return String(given);
  } catch {
    problems.push(
      `spec.podResourceRequirements.${field} "${given}" is not a quantity (e.g. 600M): ${fallback} is used`,
    );
    return fallback;
  }
}

/** CPU in millicores ("100m", "0.5", "2"); NaN for anything else (then nothing is compared). */
function proxyUrlProblem(field: string, v: string | undefined): string | undefined {
  if (!v) return undefined;
  try {
    const u = new URL(v);
    if (u.protocol === 'http:' || u.protocol === 'https:') return undefined;
  } catch {
    // below
  }
  return `spec.importProxy.${field} "${v}" is not an http:// or https:// URL: importers will fail to use it`;
}

export function computeConfigStatus(config: CDIConfig, classes: StorageClass[]): ConfigResolution {
  const spec = config.spec ?? {};
  const problems: string[] = [];
  const status: NonNullable<CDIConfig['status']> = { ...structuredClone(config.status ?? {}) };
  delete status.conditions; // the controller sets them from the problems
  status.preallocation = spec.preallocation === true;

  const names = classes.map((c) => c.metadata.name ?? '');
  const scratch = spec.scratchSpaceStorageClass;
  status.scratchSpaceStorageClass = scratch && names.includes(scratch) ? scratch : '';
  if (scratch && !names.includes(scratch))
    problems.push(
      `spec.scratchSpaceStorageClass "${scratch}" is not a StorageClass: scratch volumes use the target's storage class`,
    );

  const r = spec.podResourceRequirements;
  const limits: Quantities = r?.limits;
  const requests: Quantities = r?.requests;
  status.defaultPodResourceRequirements = {
    limits: {
      cpu: quantity(problems, 'limits.cpu', limits?.['cpu'], DefaultPodResources.limits.cpu),
      memory: quantity(problems, 'limits.memory', limits?.['memory'], DefaultPodResources.limits.memory),
    },
    requests: {
      cpu: quantity(problems, 'requests.cpu', requests?.['cpu'], DefaultPodResources.requests.cpu),
      memory: quantity(
        problems,
        'requests.memory',
        requests?.['memory'],
        DefaultPodResources.requests.memory,
      ),
    },
  };
  const resolved = status.defaultPodResourceRequirements;
  for (const res of ['cpu', 'memory'] as const) {
    const lim = String(resolved.limits?.[res]);
    const req = String(resolved.requests?.[res]);
    const size = res === 'cpu' ? parseMilliQuantity : parseQuantity;
    if (size(req) > size(lim))
      problems.push(
        `spec.podResourceRequirements: requests.${res} ${req} is larger than limits.${res} ${lim}: the API server will refuse every importer pod`,
      );
  }

  if (spec.imagePullSecrets) status.imagePullSecrets = spec.imagePullSecrets;
  else delete status.imagePullSecrets;

  const givenGlobal = spec.filesystemOverhead?.global;
  const global =
    givenGlobal !== undefined && validOverhead(givenGlobal) ? givenGlobal : DefaultGlobalOverhead;
  if (givenGlobal !== undefined && !validOverhead(givenGlobal))
    problems.push(
      `spec.filesystemOverhead.global "${givenGlobal}" is not 0, 1 or 0.xxx: ${DefaultGlobalOverhead} is used`,
    );
  const per = spec.filesystemOverhead?.storageClass ?? {};
  const storageClass: Record<string, string> = {};
  for (const n of names) {
    const v: string | undefined = per[n];
    if (v !== undefined && !validOverhead(v))
      problems.push(
        `spec.filesystemOverhead.storageClass.${n} is "${v}": use 0, 1 or 0.xxx; ${global} is used`,
      );
    storageClass[n] = v !== undefined && validOverhead(v) ? v : global;
  }
  status.filesystemOverhead = { global, storageClass };

  status.importProxy = spec.importProxy
    ? structuredClone(spec.importProxy)
    : { HTTPProxy: '', HTTPSProxy: '', noProxy: '', trustedCAProxy: '' };
  for (const [field, v] of [
    ['HTTPProxy', spec.importProxy?.HTTPProxy],
    ['HTTPSProxy', spec.importProxy?.HTTPSProxy],
  ] as const) {
    const p = proxyUrlProblem(field, v);
    if (p) problems.push(p);
  }
  // upstream reconcileUploadProxy: the override (no Ingress or Route lookup here)
  if (spec.uploadProxyURLOverride) status.uploadProxyURL = spec.uploadProxyURLOverride;
  else delete status.uploadProxyURL;
  return { status, problems };
}
