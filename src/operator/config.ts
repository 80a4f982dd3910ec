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
