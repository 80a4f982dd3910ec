// Installing and removing CDI through the operator, as an administrator does: the release's cdi-operator.yaml, then
// cdi-cr.yaml; deleting the CDI resource, then cdi-operator.yaml. Used by every e2e suite (deployCdi) and by the
// operator's own e2e tests.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Resources, type KubeClient, type KubeObject } from '../../src/kube/index.ts';
import {
  cdiResource,
  defaultReleaseOptions,
  releaseImagesFrom,
  renderReleaseFiles,
  type ReleaseOptions,
} from '../../src/operator/release.ts';
import type { CDIStatus } from '../../src/operator/status.ts';
import { eventually, kubectl, repoRoot } from '../integration/kube/cluster.ts';

export type CdiObject = KubeObject & { spec?: Record<string, unknown>; status?: CDIStatus };

/**
 * Where the cluster's S3 and GCS test servers listen (hack/cluster/test-servers.ts), as the operator's environment:
 * the controller it deploys sends s3:// and gs:// URLs there. None when the servers were not started.
 */
function objectStoreEnv(): Record<string, string> {
  try {
    const s = JSON.parse(
      readFileSync(join(repoRoot, '.cluster', 'test-servers', 'test-servers.json'), 'utf8'),
    ) as { s3?: { endpoint?: string }; gcs?: { endpoint?: string } };
    return {
      ...(s.s3?.endpoint ? { AWS_ENDPOINT_URL_S3: s.s3.endpoint } : {}),
      ...(s.gcs?.endpoint ? { STORAGE_EMULATOR_HOST: s.gcs.endpoint } : {}),
    };
  } catch {
    return {};
  }
}

/** The release for this build's images (hack/images/build.sh's content tag), pulled IfNotPresent. */
export function releaseFor(tag: string, overrides: Partial<ReleaseOptions> = {}): ReleaseOptions {
  return {
    ...defaultReleaseOptions,
    ...releaseImagesFrom('localhost:5000', tag),
    version: `v0.1.0-${tag}`,
    pullPolicy: 'IfNotPresent',
    operatorEnv: objectStoreEnv(),
    ...overrides,
  };
}

/** `kubectl <args> -f <file>` on YAML text (through a temporary file, as an administrator would). */
export async function kubectlFile(
  args: string[],
  yaml: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'cdi-release-'));
  try {
    const file = join(dir, 'manifest.yaml');
    await writeFile(file, yaml);
    const r = await kubectl(...args, '-f', file);
    return { code: r.code, stdout: r.stdout, stderr: r.stderr.trim() || r.stdout.trim() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function mustKubectlFile(args: string[], yaml: string): Promise<void> {
  const r = await kubectlFile(args, yaml);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
}

/**
 * `kubectl create -f`; objects other suites leave on the shared cluster (the CRDs the integration tests install, a
 * namespace an older harness kept) make it fail with AlreadyExists, and are then taken over by a server-side apply
 * of the same file.
 */
export async function createOrTakeOver(yaml: string): Promise<void> {
  const r = await kubectlFile(['create'], yaml);
  if (r.code === 0) return;
  const other = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/\(AlreadyExists\)/.test(l));
  if (other.length > 0) throw new Error(`kubectl create failed: ${other.join('; ')}`);
  await mustKubectlFile(['apply', '--server-side', '--force-conflicts'], yaml);
}

export const getCdi = (client: KubeClient, name = 'cdi'): Promise<CdiObject | undefined> =>
  client.getOrUndefined<CdiObject>(Resources.CDI, name);

const conditionTrue = (cr: CdiObject | undefined, type: string): boolean =>
  cr?.status?.conditions?.some((c) => c.type === type && c.status === 'True') ?? false;

/** Waits until the CDI resource is Available at `version` (phase Deployed). */
export async function waitAvailable(
  client: KubeClient,
  version: string,
  limitMs = 300_000,
): Promise<CdiObject> {
  return eventually(
    `CDI cdi Available at ${version}`,
    async () => {
      const cr = await getCdi(client);
      if (cr?.status?.phase === 'Error')
        throw new Error(`CDI cdi is in phase Error: ${JSON.stringify(cr.status.conditions)}`);
      return conditionTrue(cr, 'Available') &&
        cr?.status?.phase === 'Deployed' &&
        cr.status.observedVersion === version
        ? cr
        : undefined;
    },
    limitMs,
    1000,
  );
}

/** Waits until the CRD of the CDI resource (in cdi-operator.yaml) is Established, so cdi-cr.yaml can be created. */
export async function waitCdiCrd(client: KubeClient): Promise<void> {
  await eventually('CRD cdis.cdi.kubevirt.io Established', async () => {
    const crd = await client.get<
      KubeObject & { status?: { conditions?: { type: string; status: string }[] } }
    >(Resources.CustomResourceDefinition, 'cdis.cdi.kubevirt.io');
    return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
  });
}

/** kubectl create -f cdi-operator.yaml; kubectl create -f cdi-cr.yaml; wait for Available. */
export async function installCdi(
  client: KubeClient,
  release: ReleaseOptions,
  cr: Record<string, unknown> = cdiResource(release),
): Promise<CdiObject> {
  const files = renderReleaseFiles(release);
  await createOrTakeOver(files['cdi-operator.yaml'] ?? '');
  await waitCdiCrd(client);
  await mustKubectlFile(['create'], JSON.stringify(cr));
  try {
    return await waitAvailable(client, release.version);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${await diagnose(release.namespace)}`);
  }
}

/**
 * Deletes the CDI resource (the operator removes everything it installed, then releases it), then the operator's
 * own manifests, and waits until the namespace is gone: nothing of CDI is left running.
 */
export async function uninstallCdi(
  client: KubeClient,
  release: ReleaseOptions,
  limitMs = 300_000,
): Promise<void> {
  const cr = await getCdi(client);
  if (cr) {
    await client.delete(Resources.CDI, 'cdi');
    await eventually(
      'CDI cdi removed by the operator',
      async () => (await getCdi(client)) === undefined,
      limitMs,
      1000,
    );
  }
  await mustKubectlFile(
    ['delete', '--ignore-not-found', '--wait=false'],
    renderReleaseFiles(release)['cdi-operator.yaml'] ?? '',
  );
  await eventually(
    `namespace ${release.namespace} removed`,
    async () => (await client.getOrUndefined(Resources.Namespace, release.namespace)) === undefined,
    limitMs,
    1000,
  );
}

/** What an administrator would look at when CDI does not come up: the CDI status, the pods, the operator's log. */
export async function diagnose(namespace: string): Promise<string> {
  const parts = await Promise.all([
    kubectl('get', 'cdi', 'cdi', '-o', 'jsonpath={.status}'),
    kubectl('-n', namespace, 'get', 'pods', '-o', 'wide'),
    kubectl('-n', namespace, 'logs', 'deployment/cdi-operator', '--tail=40'),
    kubectl('-n', namespace, 'get', 'events', '--sort-by=.lastTimestamp'),
  ]);
  return parts.map((r) => (r.stdout || r.stderr).trim()).join('\n---\n');
}
