import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Pod } from '../../kube/index.ts';
import { isCdiPod } from '../shared/indexes.ts';
import type { DataImportCron } from '../shared/types.ts';
import {
  containerImageDigest,
  desiredPollerPod,
  ImagePullError,
  isControllerPolledSource,
  isNodePull,
  isPvcSource,
  pollerPodName,
  pvcDigest,
} from './poller.ts';

const D = 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const cron = (source: Record<string, unknown>): DataImportCron => ({
  metadata: { name: 'fedora', namespace: 'golden', uid: '8d2a1c4e-77f0-4b1e-9c3d-000000000001' },
  spec: { schedule: '* * * * *', managedDataSource: 'fedora', template: { spec: { source } } },
});
const opts = { image: 'localhost:5000/cdi-importer:dev', pullPolicy: 'IfNotPresent', cdiNamespace: 'cdi' };

void test('pvc and node-pull sources are polled by the controller; a pod-pull URL by the CronJob', () => {
  const node = cron({ registry: { url: 'docker://r/fedora:latest', pullMethod: 'node' } });
  const pod = cron({ registry: { url: 'docker://r/fedora:latest', pullMethod: 'pod' } });
  const plain = cron({ registry: { url: 'docker://r/fedora:latest' } });
  const pvc = cron({ pvc: { namespace: 'src', name: 'golden-disk' } });
  assert.deepEqual(
    [node, pod, plain, pvc].map((c) => [isNodePull(c), isPvcSource(c), isControllerPolledSource(c)]),
    [
      [true, false, true],
      [false, false, false],
      [false, false, false],
      [false, true, true],
    ],
  );
  assert.equal(pvcDigest('8d2a1c4e-77f0'), 'uid:8d2a1c4e-77f0');
  assert.equal(pvcDigest(undefined), undefined);
});

void test("the node-pull poller pod: upstream's name, owner, containers and placement", () => {
  const c = cron({
    registry: {
      url: 'docker://localhost:5000/fedora:latest',
      pullMethod: 'node',
      platform: { architecture: 'arm64' },
    },
  });
  assert.equal(pollerPodName(c), 'poller-fedora-8d2a1c4e');
  const long = cron({ registry: { url: 'docker://r/x', pullMethod: 'node' } });
  long.metadata.name = 'c'.repeat(250);
  assert.ok(pollerPodName(long).length <= 253, 'shortened as upstream GetResourceName');
  assert.match(pollerPodName(long), /^poller-c+-[0-9a-f]+-8d2a1c4e$/);
  const p = desiredPollerPod(c, { ...opts, nodeSelector: { tier: 'workers' } });
  assert.equal(p.metadata?.name, 'poller-fedora-8d2a1c4e');
  assert.equal(p.metadata?.namespace, 'golden', "in the cron's namespace, as upstream");
  assert.equal(p.metadata?.labels?.['app'], 'containerized-data-importer', 'kept whole in the pod cache');
  assert.equal(isCdiPod(p), true);
  assert.equal(p.metadata?.labels?.['cdi.kubevirt.io/dataImportCron'], 'fedora');
  assert.deepEqual(p.metadata?.ownerReferences, [
    {
      apiVersion: 'cdi.kubevirt.io/v1beta1',
      kind: 'DataImportCron',
      name: 'fedora',
      uid: '8d2a1c4e-77f0-4b1e-9c3d-000000000001',
      blockOwnerDeletion: true,
      controller: true,
    },
  ]);
  const spec = p.spec!;
  assert.equal(spec.restartPolicy, 'Never');
  assert.equal(spec.terminationGracePeriodSeconds, 0);
  assert.deepEqual(spec.nodeSelector, { tier: 'workers', 'kubernetes.io/arch': 'arm64' });
  assert.deepEqual(spec.volumes, [{ name: 'shared-volume', emptyDir: {} }]);
  const [init] = spec.initContainers ?? [];
  assert.equal(init?.name, 'init');
  assert.equal(init?.image, opts.image);
  assert.deepEqual(init?.command?.slice(-2), ['install', '/shared']);
  const [ct] = spec.containers;
  assert.equal(ct?.name, 'image-container');
  assert.equal(ct?.image, 'localhost:5000/fedora:latest', 'the URL without docker://');
  assert.equal(ct?.imagePullPolicy, 'Always');
  assert.equal(ct?.command?.[0], '/shared/lib/ld-linux-aarch64.so.1', "the platform's loader");
  assert.equal(ct?.command?.at(-1), '-h');
  assert.deepEqual(ct?.volumeMounts, [{ name: 'shared-volume', mountPath: '/shared' }]);
  assert.equal(ct?.securityContext?.allowPrivilegeEscalation, false);
  assert.equal(spec.securityContext?.runAsNonRoot, true);
  assert.equal(spec.securityContext?.fsGroup, undefined, 'no fsGroup, as upstream');
  const plain = desiredPollerPod(cron({ registry: { url: 'docker://r/x:1', pullMethod: 'node' } }), opts);
  assert.equal(plain.spec?.nodeSelector, undefined);
});

const podWith = (status: Record<string, unknown> | undefined): Pod =>
  ({ metadata: { name: 'p' }, status: status ? { containerStatuses: [status] } : {} }) as Pod;

void test("the digest is read from the terminated container's imageID; a failed pull is an error", () => {
  assert.equal(containerImageDigest(podWith(undefined)), undefined, 'no status yet');
  assert.equal(
    containerImageDigest(podWith({ image: 'r/x:1', state: { waiting: { reason: 'ContainerCreating' } } })),
    undefined,
  );
  assert.equal(containerImageDigest(podWith({ image: 'r/x:1', state: { running: {} } })), undefined);
  assert.equal(
    containerImageDigest(
      podWith({ image: 'r/x:1', imageID: `localhost:5000/x@${D}`, state: { terminated: { exitCode: 0 } } }),
    ),
    D,
  );
  assert.throws(
    () => containerImageDigest(podWith({ image: 'r/x:1', state: { waiting: { reason: 'ErrImagePull' } } })),
    (e: unknown) => e instanceof ImagePullError && e.message === 'failed to pull image r/x:1: ErrImagePull',
  );
  assert.throws(
    () =>
      containerImageDigest(
        podWith({ image: 'r/x:1', imageID: 'abc', state: { terminated: { exitCode: 0 } } }),
      ),
    /Container image r\/x:1 ID has no digest: abc/,
  );
  assert.throws(
    () => containerImageDigest(podWith({ image: 'r/x:1', state: { terminated: { exitCode: 0 } } })),
    /Container has no imageID/,
  );
});
