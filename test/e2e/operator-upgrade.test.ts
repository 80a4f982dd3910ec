// Upgrading CDI through the operator while an import runs, on the full cluster, as an administrator does: the
// previous commit's build (its app images from `hack/images/build.sh --rev`, its release rendered by its own
// hack/gen-manifests.ts) installed with `kubectl create -f cdi-operator.yaml` + `cdi-cr.yaml`; a DataVolume imported
// and another one importing from a server that holds the rest of the image back; then this build's cdi-operator.yaml
// applied. The CDI resource reaches Available at the new version with every component on the new images, the running
// importer pod is the same pod throughout, and once the server lets the rest through the import completes with the
// right bytes; the DataVolume imported before is still there and Succeeded.
//   flock -o /work/cluster-tests.lock node --test test/e2e/operator-upgrade.test.ts
// CDI_UPGRADE_FROM=<rev> picks the commit to upgrade from; the default is the previous build: the parent of the
// latest commit that changed what goes into the images (src, bin, package.json), so the two builds differ. It must
// have the operator and this tree's package-lock.json (build.sh --rev reuses this tree's production node_modules).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Resources, type KubeClient, type KubeObject, type Pod } from '../../src/kube/index.ts';
import { Kinds } from '../../src/operator/resources.ts';
import { renderReleaseFiles, type ReleaseOptions } from '../../src/operator/release.ts';
import { startFileServer, type FileServer } from '../support/fileserver.ts';
import { clusterClient, createNamespace, eventually, repoRoot } from '../integration/kube/cluster.ts';
import {
  NODE_IP,
  STORAGE_CLASS,
  imagesEnv,
  makeFixtures,
  md5OnVolume,
  requireFullCluster,
  type Fixtures,
} from './harness.ts';
import {
  createOrTakeOver,
  diagnose,
  getCdi,
  kubectlFile,
  releaseFor,
  uninstallCdi,
  waitAvailable,
  waitCdiCrd,
} from './operator-install.ts';

const run = promisify(execFile);

let client: KubeClient;
let release: ReleaseOptions;
let fx: Fixtures;
let files: FileServer;
let gated: { url: string; open: () => void; close: () => Promise<void>; started: Promise<void> };
let ns = '';
let cleanupNs: () => Promise<void> = async () => {};
let work = '';
let from = '';

/**
 * Serves `path` over HTTP on the node address: the first `head` bytes of every GET at once, the rest only after
 * open() (so an import started before stays running for as long as the test needs). `started` resolves once a GET
 * has sent its head.
 */
async function startGatedServer(
  path: string,
  head: number,
): Promise<{ url: string; open: () => void; close: () => Promise<void>; started: Promise<void> }> {
  const data = await readFile(path);
  let release = (): void => {};
  const gate = new Promise<void>((r) => (release = r));
  let started = (): void => {};
  const first = new Promise<void>((r) => (started = r));
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-length': String(data.length), 'content-type': 'application/octet-stream' });
    if (req.method === 'HEAD') return void res.end();
    res.write(data.subarray(0, head), () => started());
    void gate.then(() => res.end(data.subarray(head)));
  });
  await new Promise<void>((r) => server.listen(0, NODE_IP, r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://${NODE_IP}:${port}/disk.raw`,
    open: release,
    started: first,
    close: () =>
      new Promise<void>((r) => {
        release();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function sh(cmd: string, args: string[], cwd = repoRoot): Promise<string> {
  const r = await run(cmd, args, { cwd, maxBuffer: 64 << 20, env: process.env });
  return r.stdout;
}

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  if (await getCdi(client))
    throw new Error(
      'CDI is installed already; this suite installs it itself: npm run cluster:sync -- --undeploy',
    );
  const lastAppChange = (
    await sh('git', ['rev-list', '-n1', 'HEAD', '--', 'src', 'bin', 'package.json'])
  ).trim();
  from = (await sh('git', ['rev-parse', process.env['CDI_UPGRADE_FROM'] ?? `${lastAppChange}~1`])).trim();
  release = releaseFor(imagesEnv()['CDI_IMAGE_TAG'] ?? 'dev');
  fx = await makeFixtures(16);
  files = await startFileServer({ root: fx.dir, host: NODE_IP });
  gated = await startGatedServer(join(fx.dir, 'disk.raw'), 1 << 20);
  work = await mkdtemp(join(tmpdir(), 'cdi-e2e-upgrade-'));
});

after(async () => {
  await gated?.close();
  await cleanupNs();
  await files?.close();
  await fx?.cleanup();
  if (release)
    await uninstallCdi(client, release).catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
  if (work) await rm(work, { recursive: true, force: true });
});

interface Deployment extends KubeObject {
  spec: { template: { spec: { containers: { image: string }[] } } };
  status?: { updatedReplicas?: number; readyReplicas?: number; replicas?: number };
}

void test('the previous commit installed, an import running: applying this cdi-operator.yaml upgrades CDI and the import completes', async (t) => {
  // the previous commit's app images and release, each by its own code
  const built = await sh('bash', ['hack/images/build.sh', '--rev', from]);
  const oldTag = /CDI_IMAGE_TAG=(\w+)/.exec(built)?.[1];
  assert.ok(oldTag, `build.sh --rev ${from} printed its tag: ${built.slice(-400)}`);
  assert.notEqual(
    oldTag,
    release.images.controller.split(':').pop(),
    'the previous commit builds other images',
  );
  const oldTree = join(work, 'old');
  await sh('bash', [
    '-c',
    `mkdir -p ${oldTree} && git archive ${from} -- src hack package.json | tar -xf - -C ${oldTree}`,
  ]);
  await symlink(join(repoRoot, 'node_modules'), join(oldTree, 'node_modules'));
  const oldVersion = `v0.1.0-${oldTag}`;
  await sh(
    process.execPath,
    [
      join(oldTree, 'hack', 'gen-manifests.ts'),
      '--out',
      join(oldTree, 'out'),
      '--registry',
      'localhost:5000',
      '--tag',
      oldTag,
      '--pull-policy',
      'IfNotPresent',
      '--version',
      oldVersion,
    ],
    oldTree,
  );
  const oldRelease = (f: string): Promise<string> => readFile(join(oldTree, 'out', 'release', f), 'utf8');
  t.diagnostic(`from ${from.slice(0, 12)} (${oldVersion}) to ${release.version}`);

  // (the CRDs integration suites leave on the shared cluster are taken over, as in every e2e install)
  await createOrTakeOver(await oldRelease('cdi-operator.yaml'));
  await waitCdiCrd(client);
  const created = await kubectlFile(['create'], await oldRelease('cdi-cr.yaml'));
  assert.equal(created.code, 0, `kubectl create -f cdi-cr.yaml (old): ${created.stderr}`);
  await waitAvailable(client, oldVersion).catch(async (e: unknown) => {
    throw new Error(`${String(e)}\n${await diagnose('cdi')}`);
  });

  ({ name: ns, cleanup: cleanupNs } = await createNamespace(client, 'e2e-upgrade'));
  const dv = (name: string, url: string): KubeObject =>
    ({
      metadata: { name, namespace: ns },
      spec: {
        source: { http: { url } },
        storage: { storageClassName: STORAGE_CLASS, resources: { requests: { storage: '32Mi' } } },
      },
    }) as KubeObject;
  const phase = async (name: string): Promise<string | undefined> =>
    (await client.get<KubeObject & { status?: { phase?: string } }>(Resources.DataVolume, name, ns)).status
      ?.phase;
  // imported before the upgrade
  await client.create(Resources.DataVolume, dv('before', `${files.url}/${fx.files.qcow2}`));
  await eventually(
    'DataVolume before Succeeded',
    async () => (await phase('before')) === 'Succeeded',
    300_000,
    1000,
  );
  // importing during the upgrade: its server holds everything past the first MiB back
  await client.create(Resources.DataVolume, dv('during', gated.url));
  await gated.started;
  const importer = await eventually('the importer pod of during Running', async () => {
    const pods = await client.list<Pod>(Resources.Pod, { namespace: ns });
    return pods.items.find((p) => p.metadata?.name?.startsWith('importer-') && p.status?.phase === 'Running');
  });
  assert.equal(await phase('during'), 'ImportInProgress');

  // the upgrade: this build's cdi-operator.yaml applied over the running one
  const t0 = Date.now();
  const applied = await kubectlFile(
    ['apply', '--server-side', '--force-conflicts'],
    renderReleaseFiles(release)['cdi-operator.yaml'] ?? '',
  );
  assert.equal(applied.code, 0, applied.stderr);
  const cr = await waitAvailable(client, release.version);
  t.diagnostic(`upgraded to ${cr.status?.observedVersion} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(cr.status?.targetVersion, release.version);
  for (const [name, image] of [
    ['cdi-operator', release.operatorImage],
    ['cdi-deployment', release.images.controller],
    ['cdi-apiserver', release.images.apiServer],
    ['cdi-uploadproxy', release.images.uploadProxy],
  ] as const) {
    const d = await eventually(`${name} rolled out on the new image`, async () => {
      const x = await client.get<Deployment>(Kinds.Deployment, name, 'cdi');
      return x.spec.template.spec.containers[0]?.image === image &&
        (x.status?.updatedReplicas ?? 0) >= 1 &&
        x.status?.updatedReplicas === x.status?.replicas
        ? x
        : undefined;
    });
    assert.equal(d.spec.template.spec.containers[0]?.image, image);
  }
  // the import was not interrupted: the same importer pod, still importing, the data still held back
  const still = await client.get<Pod>(Resources.Pod, importer.metadata?.name ?? '', ns);
  assert.equal(
    still.metadata?.uid,
    importer.metadata?.uid,
    'the importer pod is the one that started before',
  );
  assert.equal(still.status?.phase, 'Running');
  assert.equal(await phase('during'), 'ImportInProgress');

  gated.open();
  await eventually(
    'DataVolume during Succeeded',
    async () => {
      const p = await phase('during');
      if (p === 'Failed') throw new Error('the import failed');
      return p === 'Succeeded';
    },
    300_000,
    1000,
  );
  assert.equal(await md5OnVolume(client, ns, 'during', { bytes: fx.rawSize }), fx.rawMd5);
  // nothing lost: the DataVolume of before the upgrade is there and Succeeded, its bytes intact
  assert.equal(await phase('before'), 'Succeeded');
  assert.equal(await md5OnVolume(client, ns, 'before', { bytes: fx.rawSize }), fx.rawMd5);
});
