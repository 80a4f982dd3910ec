// Shared helpers for integration tests against the real API server of the local cluster
// (`npm run cluster:up -- --profile control-plane`).
import { after, before } from 'node:test';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { crds } from '../../../src/api/crds.ts';
import {
  KubeClient,
  Resources,
  isNotFound,
  type KubeObject,
  type Resource,
} from '../../../src/kube/index.ts';

export const repoRoot = join(import.meta.dirname, '..', '..', '..');
export const kubeconfigPath = process.env.CDI_KUBECONFIG ?? join(repoRoot, '.cluster', 'kubeconfig');

/** A client for the local cluster; throws one clear line when the cluster is not there. */
export function clusterClient(): KubeClient {
  if (!existsSync(kubeconfigPath)) {
    throw new Error(
      `no cluster: ${kubeconfigPath} is missing; run \`npm run cluster:up -- --profile control-plane\` first`,
    );
  }
  return KubeClient.fromFile(kubeconfigPath);
}

/** Polls fn until it returns a value other than undefined/false; a wait limit, not a timing assertion. */
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  limitMs = 60_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + limitMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`gave up waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Creates a namespace with a unique name; returns it and a cleanup that deletes it. */
export async function createNamespace(
  client: KubeClient,
  prefix: string,
): Promise<{ name: string; cleanup: () => Promise<void> }> {
  const name = `${prefix}-${randomBytes(3).toString('hex')}`;
  await client.create(Resources.Namespace, { metadata: { name, labels: { 'cdi-ts-test': prefix } } });
  return { name, cleanup: async () => void (await client.delete(Resources.Namespace, name)) };
}

/** Installs (server-side applies) the generated CRDs and waits until they are Established. */
export async function installCrds(client: KubeClient): Promise<void> {
  for (const crd of crds()) {
    await client.apply(Resources.CustomResourceDefinition, crd, {
      fieldManager: 'cdi-ts-tests',
      force: true,
    });
  }
  for (const crd of crds()) {
    const name = (crd.metadata as { name: string }).name;
    await eventually(`CRD ${name} to be Established`, async () => {
      const got = await client.get<
        KubeObject & { status?: { conditions?: { type: string; status: string }[] } }
      >(Resources.CustomResourceDefinition, name);
      return got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    });
  }
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function kubectl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      'kubectl',
      ['--kubeconfig', kubeconfigPath, ...args],
      { maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

export async function deleteIfExists(
  client: KubeClient,
  r: Resource,
  name: string,
  namespace?: string,
): Promise<void> {
  try {
    await client.delete(r, name, { namespace });
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

/**
 * The setup every cluster test file shares: before its tests, a client, the CDI CRDs (with `crds`) and a fresh
 * namespace, handed to `ready`; after them, the namespace deleted.
 */
export function useTestNamespace(
  prefix: string,
  ready: (client: KubeClient, ns: string) => void,
  opts: { crds?: boolean } = {},
): void {
  let cleanup: () => Promise<void> = async () => {};
  before(async () => {
    const client = clusterClient();
    if (opts.crds) await installCrds(client);
    const created = await createNamespace(client, prefix);
    cleanup = created.cleanup;
    ready(client, created.name);
  });
  after(async () => cleanup());
}
