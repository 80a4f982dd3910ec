// Helpers for tests against the local cluster (npm run cluster:up): kubectl, throwaway namespaces, one-shot pods.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '..', '..');
export const kubeconfig = join(repoRoot, '.cluster', 'kubeconfig');
/** The node's InternalIP, on the bridge cluster:up creates; pods reach host servers here. */
export const nodeIP = '10.99.0.1';

function commonValue(name: string): string {
  const text = readFileSync(join(repoRoot, 'hack', 'cluster', 'lib', 'common.sh'), 'utf8');
  const m = new RegExp(`^${name}=(\\S+)`, 'm').exec(text);
  if (!m?.[1]) throw new Error(`${name} not found in hack/cluster/lib/common.sh`);
  return m[1];
}

const kubectlBin = join(
  process.env['CDI_DEV_CACHE'] ?? join(homedir(), '.cache', 'cdi-dev'),
  `kube-${commonValue('KUBE_VERSION')}`,
  'bin',
  'kubectl',
);

/** Fails with the command to run when the full cluster is not up. */
export function requireFullCluster(): void {
  const profileFile = join(repoRoot, '.cluster', 'profile');
  const profile = existsSync(profileFile) ? readFileSync(profileFile, 'utf8').trim() : '';
  if (profile !== 'full' || !existsSync(kubectlBin)) {
    throw new Error(
      `the full local cluster is not running (profile: '${profile}'): run npm run cluster:up first`,
    );
  }
}

/** Values written by hack/images/build.sh (image names and tags). */
export function imagesEnv(): Record<string, string> {
  const file = join(repoRoot, '.cluster', 'images.env');
  if (!existsSync(file)) throw new Error(`${file} is missing: run npm run cluster:sync`);
  const out: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export function kubectl(args: string[], input?: string): Promise<string> {
  return new Promise((res, rej) => {
    const child = execFile(
      kubectlBin,
      ['--kubeconfig', kubeconfig, ...args],
      { maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) rej(new Error(`kubectl ${args.join(' ')}: ${stderr.trim() || err.message}`));
        else res(stdout);
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

export async function apply(obj: unknown): Promise<void> {
  await kubectl(['apply', '-f', '-'], JSON.stringify(obj));
}

export async function getJson(args: string[]): Promise<Record<string, unknown>> {
  return JSON.parse(await kubectl(['get', ...args, '-o', 'json'])) as Record<string, unknown>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls check() until it returns a value; the error names what was awaited and the last state seen. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 180_000,
  describe?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(1000);
  }
  const detail = describe ? await describe().catch((e: unknown) => (e as Error).message) : last;
  throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}\n${detail}`);
}

export async function createNamespace(prefix: string): Promise<string> {
  const ns = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
  await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  await waitFor(`service account in ${ns}`, async () =>
    (await kubectl(['-n', ns, 'get', 'serviceaccount', 'default', '-o', 'name'])) ? true : undefined,
  );
  return ns;
}

export async function deleteNamespace(ns: string): Promise<void> {
  await kubectl(['delete', 'namespace', ns, '--wait=false', '--ignore-not-found']);
}

export interface PodOptions {
  image: string;
  script: string;
  pvc?: { name: string; mode: 'Filesystem' | 'Block' };
}

/** Runs a one-shot pod (sh -c script) to completion and returns its log; fails with describe output otherwise. */
export async function runPod(ns: string, name: string, opts: PodOptions): Promise<string> {
  const volumes = opts.pvc ? [{ name: 'vol', persistentVolumeClaim: { claimName: opts.pvc.name } }] : [];
  const container: Record<string, unknown> = {
    name: 'main',
    image: opts.image,
    command: ['/bin/sh', '-c', opts.script],
  };
  if (opts.pvc?.mode === 'Filesystem') container['volumeMounts'] = [{ name: 'vol', mountPath: '/data' }];
  if (opts.pvc?.mode === 'Block') container['volumeDevices'] = [{ name: 'vol', devicePath: '/dev/xvda' }];
  await apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns },
    spec: { restartPolicy: 'Never', terminationGracePeriodSeconds: 1, containers: [container], volumes },
  });
  const describe = async (): Promise<string> =>
    (await kubectl(['-n', ns, 'describe', 'pod', name])) +
    (await kubectl(['-n', ns, 'logs', name]).catch(() => '(no log)'));
  const phase = await waitFor(
    `pod ${ns}/${name} to finish`,
    async () => {
      const p = await kubectl(['-n', ns, 'get', 'pod', name, '-o', 'jsonpath={.status.phase}']);
      return p === 'Succeeded' || p === 'Failed' ? p : undefined;
    },
    240_000,
    describe,
  );
  const logs = await kubectl(['-n', ns, 'logs', name]);
  if (phase !== 'Succeeded') throw new Error(`pod ${ns}/${name} failed:\n${await describe()}`);
  return logs;
}

export async function createPvc(
  ns: string,
  name: string,
  mode: 'Filesystem' | 'Block',
  size: string,
  dataSource?: { kind: 'PersistentVolumeClaim' | 'VolumeSnapshot'; name: string },
  storageClassName?: string,
): Promise<void> {
  await apply({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: { name, namespace: ns },
    spec: {
      accessModes: ['ReadWriteOnce'],
      volumeMode: mode,
      ...(storageClassName ? { storageClassName } : {}),
      resources: { requests: { storage: size } },
      ...(dataSource
        ? {
            dataSource: {
              kind: dataSource.kind,
              name: dataSource.name,
              ...(dataSource.kind === 'VolumeSnapshot' ? { apiGroup: 'snapshot.storage.k8s.io' } : {}),
            },
          }
        : {}),
    },
  });
  // The default class binds immediately; waiting here keeps pods out of the scheduler's unschedulable back-off.
  if (storageClassName?.endsWith('-wffc')) return;
  await waitFor(
    `PVC ${ns}/${name} Bound`,
    async () =>
      (await kubectl(['-n', ns, 'get', 'pvc', name, '-o', 'jsonpath={.status.phase}'])) === 'Bound'
        ? true
        : undefined,
    180_000,
    () => kubectl(['-n', ns, 'describe', 'pvc', name]),
  );
}
