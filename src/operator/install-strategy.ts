// ConfigMap cdi-install-strategy (upstream pkg/operator/resources/generate/install/strategy.go): when the operator
// runs with DUMP_INSTALL_STRATEGY=true (off by default, as upstream; `kubectl -n cdi set env deployment/cdi-operator
// DUMP_INSTALL_STRATEGY=true`), every reconcile writes what it installs for this version into the CDI namespace, key
// `manifests`: one YAML document per object, each opened by `---`, in upstream's order of kinds, without status,
// creationTimestamp or the managed-by label; kinds upstream's dump leaves out (NetworkPolicy, Secret, the Prometheus
// objects) are left out here too. Upstream reads it back nowhere (its upgrade, like ours, deletes what a version no
// longer renders from the live objects; reconcile.ts cleanup): it is for an administrator or tooling to see the whole
// install of a version in one object. Unlike upstream's it is owned by the CDI resource, so that an uninstall removes
// it and turning the variable off deletes it (docs/operator.md).
import YAML from 'yaml';
import { ManagedByLabel, type Obj } from '../deploy/common.ts';

export const InstallStrategyConfigMap = 'cdi-install-strategy';
export const InstallStrategyKey = 'manifests';
export const DumpInstallStrategyEnv = 'DUMP_INSTALL_STRATEGY';

/** upstream dumpInstallStrategy's order (its Secrets, DaemonSets and SCCs slices are empty for CDI) */
const KindOrder = [
  'ServiceAccount',
  'ClusterRole',
  'ClusterRoleBinding',
  'Role',
  'RoleBinding',
  'CustomResourceDefinition',
  'Service',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'APIService',
  'Deployment',
  'ConfigMap',
] as const;

/** Keys in sorted order at every level, as Go's yaml.JSONToYAML writes a map. */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (typeof v !== 'object' || v === null) return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
  );
}

/** upstream marshallObject: no status, no creationTimestamp, no managed-by label. */
function strip(obj: Obj): Obj {
  // through JSON, as upstream marshals: no undefined fields, and no object shared between two places (the renderer
  // hands a Deployment and its pod template one labels object)
  const out = JSON.parse(JSON.stringify(obj)) as Obj;
  delete out['status'];
  const meta = out['metadata'] as Obj | undefined;
  if (meta) {
    delete meta['creationTimestamp'];
    const labels = meta['labels'] as Record<string, string> | undefined;
    if (labels) {
      delete labels[ManagedByLabel];
      if (Object.keys(labels).length === 0) delete meta['labels'];
    }
  }
  const tplMeta = ((out['spec'] as Obj | undefined)?.['template'] as Obj | undefined)?.['metadata'] as
    Obj | undefined;
  if (tplMeta) delete tplMeta['creationTimestamp'];
  return out;
}

/** The `manifests` text for the objects a version renders. */
export function dumpInstallStrategy(objects: readonly Obj[]): string {
  return KindOrder.flatMap((kind) => objects.filter((o) => o['kind'] === kind))
    .map(
      (o) =>
        '---\n' +
        YAML.stringify(sortKeys(strip(o)), { lineWidth: 0, indentSeq: false, aliasDuplicateObjects: false }),
    )
    .join('');
}

/** The ConfigMap (the operator adds its labels and owner when it applies it). */
export function installStrategyConfigMap(namespace: string, objects: readonly Obj[]): Obj {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: InstallStrategyConfigMap,
      namespace,
      // upstream SetRecommendedLabels(configMap, installerLabels, "cdi-operator"); the operator adds managed-by
      labels: { 'app.kubernetes.io/component': 'storage' },
    },
    data: { [InstallStrategyKey]: dumpInstallStrategy(objects) },
  };
}

/** Go's strconv.ParseBool, which upstream applies to DUMP_INSTALL_STRATEGY. */
export function parseGoBool(text: string, name: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  throw new Error(`${name} must be true or false (or 1, t, 0, f), not "${text}"`);
}
