// What the operator process is told by its Deployment (upstream's names: OPERATOR_VERSION, CONTROLLER_IMAGE,
// IMPORTER_IMAGE, APISERVER_IMAGE, UPLOAD_PROXY_IMAGE, UPLOAD_SERVER_IMAGE, PULL_POLICY, VERBOSITY), parsed once at
// the edge with one clear line per mistake. A newer cdi-operator.yaml changes these values; the operator restarts
// with them and rolls the components (the upgrade).
import { ControllerPassThroughEnv, PullPolicies, type PullPolicy } from '../deploy/common.ts';
import { DumpInstallStrategyEnv, parseGoBool } from './install-strategy.ts';

export interface OperatorImages {
  controller: string;
  importer: string;
  apiServer: string;
  uploadProxy: string;
  uploadServer: string;
}

export interface OperatorConfig {
  /** The CDI namespace: where the operator runs and installs the namespaced components. */
  namespace: string;
  /** The version this operator installs (status.targetVersion; observedVersion once rolled out). */
  version: string;
  images: OperatorImages;
  /** The default pull policy; CDI.spec.imagePullPolicy overrides it. */
  pullPolicy: PullPolicy;
  /** The default verbosity; CDI.spec.config.logVerbosity overrides it. */
  verbosity: string;
  /** Handed on to cdi-controller as they are (ControllerPassThroughEnv): where s3:// and gs:// URLs go, CDI_READS. */
  controllerEnv?: Record<string, string>;
  /** DUMP_INSTALL_STRATEGY=true: write ConfigMap cdi-install-strategy (install-strategy.ts); absent when off. */
  dumpInstallStrategy?: true;
}

type Env = Record<string, string | undefined>;

const imageEnv: Record<keyof OperatorImages, string> = {
  controller: 'CONTROLLER_IMAGE',
  importer: 'IMPORTER_IMAGE',
  apiServer: 'APISERVER_IMAGE',
  uploadProxy: 'UPLOAD_PROXY_IMAGE',
  uploadServer: 'UPLOAD_SERVER_IMAGE',
};

export function operatorConfigFromEnv(env: Env): OperatorConfig {
  const missing = ['OPERATOR_VERSION', ...Object.values(imageEnv)].filter((k) => !env[k]);
  if (missing.length)
    throw new Error(
      `${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not set: the operator's Deployment sets them (deploy/release/cdi-operator.yaml)`,
    );
  const pullPolicy = env['PULL_POLICY'] || 'IfNotPresent';
  if (!(PullPolicies as readonly string[]).includes(pullPolicy))
    throw new Error(`PULL_POLICY must be one of ${PullPolicies.join(', ')}, not "${pullPolicy}"`);
  const verbosity = env['VERBOSITY'] || '1';
  if (!/^\d+$/.test(verbosity)) throw new Error(`VERBOSITY must be a whole number, not "${verbosity}"`);
  const images = Object.fromEntries(
    Object.entries(imageEnv).map(([k, name]) => [k, env[name] as string]),
  ) as unknown as OperatorImages;
  const dump = env[DumpInstallStrategyEnv]
    ? parseGoBool(env[DumpInstallStrategyEnv], DumpInstallStrategyEnv)
    : false;
  return {
    namespace: env['POD_NAMESPACE'] || 'cdi',
    version: env['OPERATOR_VERSION'] as string,
    images,
    pullPolicy: pullPolicy as PullPolicy,
    verbosity,
    controllerEnv: Object.fromEntries(ControllerPassThroughEnv.flatMap((n) => (env[n] ? [[n, env[n]]] : []))),
    ...(dump ? { dumpInstallStrategy: true as const } : {}),
  };
}

const units: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * A Go time.Duration string ("48h", "1h30m", "90s", "1.5h", "10m0s") in milliseconds, as metav1.Duration accepts
 * it in CDI.spec.certConfig. Throws one line naming the field.
 */
export function parseGoDuration(text: string, field: string): number {
  const s = text.trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    total += Number(m[1]) * (units[m[2] as string] as number);
    matched = re.lastIndex;
  }
  if (s === '' || matched !== s.length)
    throw new Error(`${field}: "${text}" is not a duration; write it as Go does, e.g. 48h, 1h30m or 90s`);
  return total;
}
